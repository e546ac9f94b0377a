namespace TaggedMirror.Cli.Api;

/// <summary>What a write or an append answers: its tag (<c>controller:epoch:seq</c>) and where it landed.</summary>
internal sealed record WriteResponse(string Tag, long FirstBlock, int Blocks, int MirrorsHolding, int Mirrors, bool Applied);
