using System.Diagnostics;
using System.Globalization;

namespace TaggedMirror.DevKafka.Tests;

/// <summary>The real devkafka process (<c>dotnet TaggedMirror.DevKafka.dll</c>) in a temporary directory.</summary>
internal sealed class DevKafkaProcess : IDisposable
{
    private readonly Process _process;
    private readonly string _directory;

    private DevKafkaProcess(Process process, string directory, string bootstrapFile)
    {
        _process = process;
        _directory = directory;
        BootstrapFile = bootstrapFile;
    }

    internal string BootstrapFile { get; }

    internal Process Process => _process;

    internal static async Task<DevKafkaProcess> StartAsync(string arguments, CancellationToken ct)
    {
        // The ProjectReference copies the devkafka assembly and its runtimeconfig next to the tests.
        var dll = Path.Combine(AppContext.BaseDirectory, "TaggedMirror.DevKafka.dll");
        Assert.True(File.Exists(dll), $"devkafka not found at {dll}");
        var directory = Directory.CreateTempSubdirectory("devkafka-test-").FullName;
        var bootstrapFile = Path.Combine(directory, "run", "kafka.bootstrap");
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("--bootstrap-file");
        start.ArgumentList.Add(bootstrapFile);
        foreach (var argument in arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        // devkafka must not depend on stdin: close it at once.
        process.StandardInput.Close();

        var instance = new DevKafkaProcess(process, directory, bootstrapFile);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!File.Exists(bootstrapFile))
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                instance.Dispose();
                throw new InvalidOperationException($"devkafka did not write {bootstrapFile}");
            }

            await Task.Delay(50, ct);
        }

        return instance;
    }

    internal void SendSignal(string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, _process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
