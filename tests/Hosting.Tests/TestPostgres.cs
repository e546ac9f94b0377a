namespace TaggedMirror.Hosting.Tests;

/// <summary>The real PostgreSQL these tests use: the local stack's, unless <c>TM_PG</c> gives another connection string.</summary>
internal static class TestPostgres
{
    public static readonly string ConnectionString =
        Environment.GetEnvironmentVariable("TM_PG") ?? "Host=127.0.0.1;Username=tm;Password=tm;Database=tm";
}
