using System.Text.Json;
using System.Text.Json.Serialization;
using TaggedMirror.Contracts.TagTable;

namespace TaggedMirror.DeviceAgent.TagTable;

/// <summary>Source-generated JSON for the device-stream events only the agent writes (byte arrays as base64).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UseStringEnumConverter = true)]
[JsonSerializable(typeof(TransactionQuarantined))]
internal sealed partial class AgentJson : JsonSerializerContext;
