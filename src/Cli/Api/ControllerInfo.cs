namespace TaggedMirror.Cli.Api;

/// <summary>What the controller's <c>GET /controller</c> answers.</summary>
internal sealed record ControllerInfo(int ControllerId, int Epoch, long TagsIssued, int Inflight);
