using Npgsql;

namespace TaggedMirror.Hosting;

/// <summary>
/// Each service creates only the tables it owns (the controller its leases, epochs and projections; a device agent
/// its objects, offsets and live tag table). A service reading another's table before that one ever started finds
/// no table: that reads as "nothing yet", not as an error.
/// </summary>
public static class ForeignTables
{
    /// <summary>True when <paramref name="ex"/> says a table does not exist (yet).</summary>
    public static bool IsMissing(Exception ex) => ex is PostgresException { SqlState: PostgresErrorCodes.UndefinedTable };
}
