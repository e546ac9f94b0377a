namespace TaggedMirror.Controller.Fanout;

/// <summary>The write could not be made durable on enough mirrors.</summary>
internal sealed class WriteFailedException(string message) : Exception(message);
