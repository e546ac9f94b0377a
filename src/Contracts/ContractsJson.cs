using System.Text.Json;
using System.Text.Json.Serialization;
using TaggedMirror.Contracts.TagTable;

namespace TaggedMirror.Contracts;

/// <summary>Source-generated JSON for the events the project stores, so the hot path does no reflection.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UseStringEnumConverter = true)]
[JsonSerializable(typeof(TagRecorded))]
[JsonSerializable(typeof(TagRetired))]
[JsonSerializable(typeof(LogTruncated))]
[JsonSerializable(typeof(BarrierPassed))]
[JsonSerializable(typeof(FencePassed))]
public sealed partial class ContractsJson : JsonSerializerContext;
