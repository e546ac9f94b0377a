namespace TaggedMirror.Controller.Fanout;

/// <summary>What a write's caller is told: its tag, where it landed, and how many mirrors hold it.</summary>
internal sealed record WriteResult(string Tag, long FirstBlock, int Blocks, int MirrorsHolding, int Mirrors, bool Applied);

/// <summary>The write could not be made durable on enough mirrors.</summary>
internal sealed class WriteFailedException(string message) : Exception(message);
