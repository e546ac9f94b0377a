using System.Text.Json;
using System.Text.Json.Serialization;

namespace TaggedMirror.Controller.Volumes;

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UseStringEnumConverter = true)]
[JsonSerializable(typeof(VolumeCreated))]
[JsonSerializable(typeof(MirrorStateChanged))]
[JsonSerializable(typeof(ExtensionReserved))]
internal sealed partial class ControllerJson : JsonSerializerContext;
