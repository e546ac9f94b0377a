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

    public static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }
}
