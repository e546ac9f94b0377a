using Npgsql;
using TaggedMirror.Controller.Reconciliation;

namespace TaggedMirror.Controller.Tests.Reconciliation;

/// <summary>
/// The reconciliation's tables in a schema of their own, for one generated case, inside a transaction that is
/// rolled back when this is disposed: cases do not see one another and nothing is left behind, whatever happens
/// to the run. The real PostgreSQL; <c>TM_PG</c> overrides the connection string.
/// </summary>
internal sealed class ScratchReconciliation : IAsyncDisposable
{
    /// <summary>The suite's PostgreSQL (<c>TM_PG</c>, else the local stack's), for every case of this project that needs one.</summary>
    internal static readonly NpgsqlDataSource DataSource = NpgsqlDataSource.Create(
        Environment.GetEnvironmentVariable("TM_PG") ?? "Host=127.0.0.1;Username=tm;Password=tm;Database=tm");

    private ScratchReconciliation(string schema, NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        Schema = schema;
        Connection = connection;
        Transaction = transaction;
        Projection = new ReconciliationProjection(schema, new ControllerOptions());
    }

    public string Schema { get; }

    public NpgsqlConnection Connection { get; }

    public NpgsqlTransaction Transaction { get; }

    /// <summary>The projection whose decisions the case runs (<see cref="ReconciliationProjection.DecideAsync"/>).</summary>
    public ReconciliationProjection Projection { get; }

    public static async Task<ScratchReconciliation> CreateAsync()
    {
        var schema = "t_" + Guid.NewGuid().ToString("N");
        var c = await DataSource.OpenConnectionAsync();
        var t = await c.BeginTransactionAsync();
        await using (var create = new NpgsqlCommand($"CREATE SCHEMA {schema}", c, t))
        {
            await create.ExecuteNonQueryAsync();
        }

        await ReconciliationProjection.MigrateAsync(c, t, schema, CancellationToken.None);
        return new ScratchReconciliation(schema, c, t);
    }

    /// <summary>Runs the decisions over what the case inserted.</summary>
    public Task DecideAsync() => Projection.DecideAsync(Connection, Transaction, CancellationToken.None);

    /// <summary>A batch on the case's transaction.</summary>
    public NpgsqlBatch Batch() => new(Connection, Transaction);

    /// <summary>A command on the case's transaction.</summary>
    public NpgsqlCommand Command(string sql) => new(sql, Connection, Transaction);

    public static void Add(NpgsqlBatch batch, string sql, params object[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var v in values)
            command.Parameters.Add(new NpgsqlParameter { Value = v });
        batch.BatchCommands.Add(command);
    }

    public async ValueTask DisposeAsync()
    {
        await Transaction.RollbackAsync();
        await Transaction.DisposeAsync();
        await Connection.DisposeAsync();
    }
}
