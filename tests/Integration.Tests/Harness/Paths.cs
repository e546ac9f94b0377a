namespace TaggedMirror.Integration.Tests.Harness;

internal static class Paths
{
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>The built deployable, in the same configuration the tests were built in.</summary>
    public static string Deployable(string project)
    {
        var configuration = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
        var dll = Path.Combine(RepositoryRoot, "src", project, "bin", configuration, "net10.0", $"TaggedMirror.{project}.dll");
        if (!File.Exists(dll)) throw new FileNotFoundException($"{dll} is missing: build the solution first", dll);
        return dll;
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "TaggedMirror.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("TaggedMirror.sln not found above " + AppContext.BaseDirectory);
    }

    // Below Linux's ephemeral range (32768-60999 by default): the kernel never picks these as the local port of an
    // outgoing connection, so the port of a service a test stops stays free for the same service's restart. A port the
    // kernel handed out (bind to 0) could be taken meanwhile by any client connection, and the restarted service would
    // fail to listen (seen once in CI: an agent restarted after 60 s answered "connection refused" throughout).
    private const int FirstPort = 20000;
    private const int Ports = 12000;
    private static int _next = Random.Shared.Next(Ports);

    /// <summary>A loopback port nothing listens on now, outside the range the kernel hands out to outgoing connections.</summary>
    public static int FreePort()
    {
        for (var attempt = 0; attempt < Ports; attempt++)
        {
            var port = FirstPort + (int)((uint)Interlocked.Increment(ref _next) % Ports);
            try
            {
                using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
                l.Start();
                return port;
            }
            catch (System.Net.Sockets.SocketException)
            {
                // In use (another test process, or anything else on the machine): the next one.
            }
        }
        throw new InvalidOperationException($"no free loopback port in {FirstPort}-{FirstPort + Ports - 1}");
    }
}
