using System.Diagnostics;
using Confluent.Kafka;

namespace TaggedMirror.Hosting.Kafka;

/// <summary>
/// Looks for a topic's brokers again, through a client's own handle, while the client waits for a broker that went
/// away. A broker that goes down drops out of the client's metadata, and librdkafka asks for it again only on its
/// once-a-second topic scan: a log that came back would go unwritten (controller) or unread (agent) for up to a
/// second longer than it needs. A metadata request through the same handle updates that client's view at once.
/// Nothing is produced or consumed; each call does at most one request per <see cref="Interval"/>, off the caller's
/// thread, and none while one is running. Dispose it before the client: the request runs on the client's handle, and
/// a request running on a destroyed handle crashes the process.
/// </summary>
public sealed class LeaderProbe(IClient client, string topic) : IDisposable
{
    /// <summary>How often a missing broker is looked for (librdkafka's own scan: once a second).</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(1);

    private readonly object _gate = new();
    private Task? _running;
    private long _lastStarted;
    private long _requests;
    private bool _closed;

    /// <summary>Metadata requests made so far.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Whether a request is running now.</summary>
    public bool Running
    {
        get
        {
            lock (_gate) return _running is { IsCompleted: false };
        }
    }

    /// <summary>Starts a metadata request for the topic unless one ran within <see cref="Interval"/> or is still running. True when it started one.</summary>
    public bool Poke()
    {
        lock (_gate)
        {
            if (_closed || _running is { IsCompleted: false }) return false;
            if (_lastStarted != 0 && Stopwatch.GetElapsedTime(_lastStarted) < Interval) return false;
            _lastStarted = Stopwatch.GetTimestamp();
            Interlocked.Increment(ref _requests);
            _running = Task.Run(Refresh);
            return true;
        }
    }

    private void Refresh()
    {
        try
        {
            using var admin = new DependentAdminClientBuilder(client.Handle).Build();
            admin.GetMetadata(topic, RequestTimeout);
        }
        catch (Exception ex) when (ex is KafkaException or ObjectDisposedException)
        {
            // No broker answered, or the client is closing: the next poke asks again.
        }
    }

    /// <summary>
    /// Starts no request after this and waits for the running one, if any, to end: its own timeout bounds the wait
    /// (<see cref="RequestTimeout"/>). Call it before disposing the client.
    /// </summary>
    public void Dispose()
    {
        Task? running;
        lock (_gate)
        {
            _closed = true;
            running = _running;
        }
        // Refresh catches what the client throws; anything else it threw ended the request too.
        try
        {
            running?.Wait();
        }
        catch (AggregateException)
        {
        }
    }
}
