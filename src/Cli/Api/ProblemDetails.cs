namespace TaggedMirror.Cli.Api;

/// <summary>The problem document every refusal carries.</summary>
internal sealed record ProblemDetails(string? Title, string? Detail, int? Status);
