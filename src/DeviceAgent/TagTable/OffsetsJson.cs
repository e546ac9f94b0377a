using System.Text.Json.Serialization;

namespace TaggedMirror.DeviceAgent.TagTable;

/// <summary>
/// Source-generated JSON for a rebuild's offsets per partition (<c>device_rebuilds.log_start</c> and
/// <c>replay_until</c>, <c>{"0": 1015}</c>): a device's first rebuild would otherwise build System.Text.Json's
/// reflection metadata for them, tens of milliseconds, while its replay waits (docs/benchmarks.md, "A first
/// rebuild's fixed costs").
/// </summary>
[JsonSerializable(typeof(Dictionary<int, long>))]
internal sealed partial class OffsetsJson : JsonSerializerContext;
