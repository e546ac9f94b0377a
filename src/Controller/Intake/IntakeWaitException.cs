namespace TaggedMirror.Controller.Intake;

/// <summary>A volume's intake cannot go on for now (a mirror not shown caught up, a write whose fate is unknown): it waits and tries again.</summary>
internal sealed class IntakeWaitException(string message) : Exception(message);
