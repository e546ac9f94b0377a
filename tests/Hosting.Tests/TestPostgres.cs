using Npgsql;

namespace TaggedMirror.Hosting.Tests;

/// <summary>The real PostgreSQL these tests use: the local stack's, unless <c>TM_PG</c> gives another connection string.</summary>
internal static class TestPostgres
{
    public static readonly string ConnectionString =
        Environment.GetEnvironmentVariable("TM_PG") ?? "Host=127.0.0.1;Username=tm;Password=tm;Database=tm";

    /// <summary>Runs <paramref name="sql"/> (one or more statements) on a connection of its own.</summary>
    public static async Task ExecuteAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var cmd = dataSource.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>The first column of the first row of <paramref name="sql"/>, as a number.</summary>
    public static async Task<long> ScalarAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var cmd = dataSource.CreateCommand(sql);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
