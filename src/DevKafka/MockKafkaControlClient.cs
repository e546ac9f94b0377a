using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace TaggedMirror.DevKafka;

/// <summary>
/// Client of the devkafka control channel: sends one command (<c>down 1</c>, <c>up 1</c>,
/// <c>leader &lt;topic&gt; &lt;partition&gt; &lt;brokerId&gt;</c>, <c>rtt &lt;brokerId&gt; &lt;ms&gt;</c>,
/// <c>topic &lt;name&gt; &lt;partitions&gt;</c>, <c>delete-records &lt;topic&gt; &lt;partition&gt; &lt;beforeOffset&gt;</c>,
/// <c>ping</c>) to a devkafka process on loopback.
/// </summary>
public static class MockKafkaControlClient
{
    /// <summary>Path of the file holding the control port, next to the bootstrap file.</summary>
    public static string ControlFilePath(string bootstrapFile) => bootstrapFile + ".control";

    /// <summary>Reads the control port that devkafka wrote next to <paramref name="bootstrapFile"/>.</summary>
    public static async Task<int> ReadPortAsync(string bootstrapFile, CancellationToken ct)
    {
        var text = await File.ReadAllTextAsync(ControlFilePath(bootstrapFile), ct).ConfigureAwait(false);
        return int.Parse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Sends <paramref name="command"/> and returns the answer line: <c>ok</c> or <c>error &lt;message&gt;</c>.
    /// </summary>
    /// <exception cref="IOException">devkafka closed the connection without answering.</exception>
    public static async Task<string> SendAsync(int port, string command, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (command.Contains('\n', StringComparison.Ordinal))
        {
            throw new ArgumentException("A command is a single line.", nameof(command));
        }

        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port, ct).ConfigureAwait(false);
        var stream = client.GetStream();
        var request = Encoding.UTF8.GetBytes(command + "\n");
        await stream.WriteAsync(request, ct).ConfigureAwait(false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var answer = await reader.ReadLineAsync(ct).ConfigureAwait(false);
        return answer ?? throw new IOException($"devkafka on port {port} closed the connection without answering '{command}'.");
    }
}
