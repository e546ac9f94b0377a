using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Nbd.Server;

namespace TaggedMirror.Controller.BlockDevice;

/// <summary>
/// Every volume this controller owns is an NBD export named after it. A volume owned by another controller is
/// refused with the reason (a client connects to its owner), an unknown name is unknown.
/// </summary>
internal sealed class VolumeExports(VolumeCatalog catalog, WritePipeline pipeline, VolumeReader reader, ControllerOptions options) : INbdExports
{
    public IReadOnlyList<NbdExportEntry> List() =>
        [.. catalog.All.Where(v => v.Owned).Select(v => new NbdExportEntry(v.Name, Describe(v)))];

    public NbdOpenResult Open(string name, string client)
    {
        if (catalog.Find(name) is not { } v)
            return NbdOpenResult.Unknown(name.Length == 0 ? "there is no default export: name a volume (nbd://host:10809/<volume>)" : $"no volume named '{name}'");
        if (!v.Owned) return NbdOpenResult.Refused($"volume {name} is served by another controller: connect to its owner");
        return NbdOpenResult.Opened(new VolumeExport(v, catalog, pipeline, reader, options, Describe(v), WriteOrigin.Nbd(client)));
    }

    private static string Describe(Volume v) =>
        $"{v.Blocks} blocks of {v.BlockSize} B mirrored on {string.Join(", ", v.Mirrors.Select(m => m.DeviceId))}";
}
