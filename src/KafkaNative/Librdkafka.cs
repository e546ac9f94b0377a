using System.Reflection;
using System.Runtime.InteropServices;

namespace TaggedMirror.KafkaNative;

/// <summary>
/// Binds every librdkafka P/Invoke in the process to one file: the <c>centos8-librdkafka.so</c> that
/// librdkafka.redist ships next to the assembly (flat in a RID-specific publish, under
/// <c>runtimes/linux-x64/native</c> otherwise).
/// </summary>
/// <remarks>
/// Left to itself, Confluent.Kafka binds the first <c>librdkafka</c> the loader finds: the redist's plain
/// <c>librdkafka.so</c> needs <c>libsasl2.so.3</c>, which Debian 12 lacks, and then whatever a distribution
/// installed (Debian's 2.0.2, which lacks functions 2.x calls). The centos8 build is self-contained.
/// Confluent.Kafka's own <c>Library.Load(path)</c> opens the file but still binds its imports by name, so the
/// loader may bind another librdkafka anyway. A resolver per assembly, set before its first P/Invoke, makes
/// the choice independent of load order and of what else is installed. Call
/// <see cref="Install(Assembly[])"/> at process start.
/// </remarks>
public static class Librdkafka
{
    /// <summary>The library name to give <c>LibraryImport</c> for librdkafka functions Confluent.Kafka does not wrap.</summary>
    public const string ImportName = "librdkafka";

    private const string FileName = "centos8-librdkafka.so";

    private static readonly Lock Gate = new();
    private static readonly HashSet<Assembly> Bound = [];
    private static IntPtr _handle;
    private static string? _path;

    /// <summary>Full path of the loaded library; null until <see cref="Install(Assembly[])"/> ran.</summary>
    public static string? LoadedPath
    {
        get
        {
            lock (Gate)
            {
                return _path;
            }
        }
    }

    /// <summary>
    /// Loads the redist's library and binds Confluent.Kafka's and <paramref name="more"/>'s librdkafka imports
    /// to it. Idempotent and thread-safe; must run before the first Kafka client or mock call.
    /// </summary>
    /// <exception cref="DllNotFoundException">The library is not next to the assembly (the build did not copy it) or does not load.</exception>
    /// <exception cref="InvalidOperationException">Another resolver was already set for one of the assemblies.</exception>
    public static void Install(params Assembly[] more)
    {
        ArgumentNullException.ThrowIfNull(more);
        lock (Gate)
        {
            if (_handle == IntPtr.Zero)
            {
                var path = Locate();
                _handle = NativeLibrary.TryLoad(path, out var handle)
                    ? handle
                    : throw new DllNotFoundException($"librdkafka at {path} did not load (it is librdkafka.redist's self-contained build; check `ldd {path}`).");
                _path = path;
            }

            foreach (var assembly in more.Prepend(typeof(Confluent.Kafka.Library).Assembly))
            {
                if (Bound.Add(assembly))
                {
                    NativeLibrary.SetDllImportResolver(assembly, Resolve);
                }
            }
        }
    }

    // Confluent.Kafka imports "librdkafka", "centos8-librdkafka" and "alpine-librdkafka" (trying them in turn);
    // its own "libdl"/"kernel32" imports fall through to the default probing.
    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) =>
        name.EndsWith(ImportName, StringComparison.Ordinal) ? _handle : IntPtr.Zero;

    private static string Locate()
    {
        // linux-x64 only: that is where the redist has a self-contained build (on arm64 its plain build is, under
        // another name; nothing here runs on arm64 yet).
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            throw new DllNotFoundException(
                $"librdkafka is bound to librdkafka.redist's linux-x64 {FileName}; this is {RuntimeInformation.RuntimeIdentifier}.");
        }

        // An assembly loaded from a single-file bundle has no location: the app directory holds the natives then.
        var location = typeof(Librdkafka).Assembly.Location;
        var directory = string.IsNullOrEmpty(location) ? AppContext.BaseDirectory : Path.GetDirectoryName(location)!;
        string[] candidates = [Path.Combine(directory, FileName), Path.Combine(directory, "runtimes", "linux-x64", "native", FileName)];
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new DllNotFoundException(
                $"librdkafka.redist's {FileName} is missing: looked for {string.Join(" and ", candidates)}. "
                + "The project must reference src/KafkaNative, and the build or publish must copy the package's native files.");
    }
}
