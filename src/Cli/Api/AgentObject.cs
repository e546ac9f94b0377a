namespace TaggedMirror.Cli.Api;

/// <summary>One storage object in <see cref="AgentStatus"/>.</summary>
internal sealed record AgentObject(string Id, int BlockSize, long ObjectBlocks, long ExtensionBlocks, bool NeedsFullCopy);
