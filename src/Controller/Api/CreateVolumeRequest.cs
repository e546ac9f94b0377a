namespace TaggedMirror.Controller.Api;

/// <summary>Body of <c>POST /volumes</c>.</summary>
internal sealed record CreateVolumeRequest(string? Name, int BlockSize, long? Blocks, string[]? Mirrors, int? MinMirrors);
