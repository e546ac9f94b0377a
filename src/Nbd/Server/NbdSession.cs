using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Nbd.Server;

/// <summary>What a handshake settled: the export, whether replies may be structured, and whether <c>base:allocation</c> was chosen.</summary>
internal sealed record NbdSession(INbdExport Export, bool Structured, bool Allocation, uint MaxPayload)
{
    /// <summary>The flags sent for an export: everything the server implements, DF only with structured replies (the spec's rule).</summary>
    public static NbdTransmissionFlags Flags(bool structured, bool readOnly = false) =>
        (readOnly ? NbdTransmissionFlags.ReadOnly : NbdTransmissionFlags.None)
        | NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua | NbdTransmissionFlags.SendTrim
        | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.CanMultiConn | (structured ? NbdTransmissionFlags.SendDf : NbdTransmissionFlags.None);

    /// <summary>The largest payload for <paramref name="export"/>: the server's, rounded down to the export's block size.</summary>
    public static uint MaxPayloadFor(INbdExport export, int serverMax) => (uint)serverMax / export.MinimumBlockSize * export.MinimumBlockSize;
}
