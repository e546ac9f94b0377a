using System.Text.Json;
using System.Text.Json.Serialization;

namespace TaggedMirror.Contracts.Intake;

/// <summary>Source-generated JSON for the intake's envelope and outcome.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(IntakeRequest))]
[JsonSerializable(typeof(IntakeOutcome))]
public sealed partial class IntakeJson : JsonSerializerContext;
