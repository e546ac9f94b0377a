using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts;
using TaggedMirror.Contracts.Intake;
using TaggedMirror.Contracts.Transactions;

namespace TaggedMirror.IntakeClient;

/// <summary>
/// Publishes writes to the intake and hands back their outcomes, hiding both topics: a request goes to
/// <see cref="IntakeTopics.Requests"/> keyed by its volume; its outcome is read from <see cref="IntakeTopics.Outcomes"/>
/// (from where that topic ended when this producer was created), filtered by this producer's id and matched by
/// request id. A request published again with the same id is never written twice: it is answered with its first
/// outcome. Thread-safe; one per producer id at a time.
/// </summary>
public sealed class IntakeProducer : IDisposable
{
    /// <summary>The client's spans: one <c>intake publish</c> per request, whose context rides in the message's headers.</summary>
    public static readonly ActivitySource Source = new("TaggedMirror.IntakeClient");

    private readonly IntakeProducerOptions _options;
    private readonly byte[] _key;
    private readonly IProducer<byte[]?, byte[]?> _producer;
    private readonly IConsumer<byte[]?, byte[]?> _consumer;
    private readonly ConcurrentDictionary<string, TaskCompletionSource<IntakeOutcome>> _waiting = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<IntakeOutcome> _received = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _reader;

    private IntakeProducer(IntakeProducerOptions options, IProducer<byte[]?, byte[]?> producer, IConsumer<byte[]?, byte[]?> consumer)
    {
        _options = options;
        _key = Encoding.UTF8.GetBytes(options.Key.Trim());
        _producer = producer;
        _consumer = consumer;
        _reader = new Thread(ReadOutcomes) { IsBackground = true, Name = "intake outcomes " + options.ProducerId };
        _reader.Start();
    }

    /// <summary>The producer's id.</summary>
    public string ProducerId => _options.ProducerId;

    /// <summary>Every outcome received for this producer so far, duplicates included, in arrival order.</summary>
    public IReadOnlyList<IntakeOutcome> Received => [.. _received];

    /// <summary>
    /// Connects: finds the outcomes topic's partitions (waiting up to <paramref name="waitForTopics"/>, 30 s by default,
    /// for it to exist) and starts reading them from their current ends, so no outcome of a request published after
    /// this returns is missed.
    /// </summary>
    public static IntakeProducer Create(IntakeProducerOptions options, TimeSpan? waitForTopics = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.Key))
            throw new ArgumentException("an API key is required: the intake answers only requests that carry one (tm key create --role producer --volumes <volume>)", nameof(options));
        if (!IntakeCodec.IsValidId(options.ProducerId))
            throw new ArgumentException($"producer id '{options.ProducerId}' is not valid: use 1 to {IntakeCodec.MaxIdLength} letters, digits, '.', '_', ':' or '-'", nameof(options));
        var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
        {
            BootstrapServers = options.BootstrapServers,
            ClientId = "tm-intake-producer-" + options.ProducerId,
            // Idempotent with acks=all: a send librdkafka retries is neither duplicated nor reordered within the partition.
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 1,
            // Kafka's default broker limit (1 MiB + 12): the largest write a controller accepts (768 KiB at most) fits.
            MessageMaxBytes = 1_048_588,
            MessageTimeoutMs = 30_000,
        }).Build();
        IConsumer<byte[]?, byte[]?>? consumer = null;
        try
        {
            consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
            {
                BootstrapServers = options.BootstrapServers,
                ClientId = "tm-intake-outcomes-" + options.ProducerId,
                // Partitions are assigned, never subscribed: the group id only satisfies the client; nothing is committed.
                GroupId = "tm-intake-outcomes-" + options.ProducerId,
                EnableAutoCommit = false,
                EnableAutoOffsetStore = false,
                AutoOffsetReset = AutoOffsetReset.Latest,
                FetchWaitMaxMs = 10,
            }).Build();
            var partitions = OutcomePartitions(producer, options.OutcomesTopic, waitForTopics ?? TimeSpan.FromSeconds(30));
            consumer.Assign(partitions.Select(p =>
            {
                var tp = new TopicPartition(options.OutcomesTopic, p);
                return new TopicPartitionOffset(tp, consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10)).High);
            }));
            return new IntakeProducer(options, producer, consumer);
        }
        catch
        {
            consumer?.Dispose();
            producer.Dispose();
            throw;
        }
    }

    /// <summary>A new request id: unique with overwhelming likelihood.</summary>
    public static string NewRequestId() => Guid.NewGuid().ToString("N");

    /// <summary>
    /// Publishes a write of <paramref name="data"/> (whole blocks) to <paramref name="volume"/> at
    /// <paramref name="firstBlock"/> and returns its outcome (a refusal is an outcome, not an exception).
    /// <see cref="IntakeTimeoutException"/> when none came within the configured timeout.
    /// </summary>
    public async Task<IntakeOutcome> PublishAsync(string volume, long firstBlock, ReadOnlyMemory<byte> data, string? requestId = null, CancellationToken ct = default)
    {
        requestId ??= NewRequestId();
        var waiting = ExpectAsync(requestId);
        try
        {
            await PublishOnlyAsync(volume, firstBlock, data, requestId, ct).ConfigureAwait(false);
            return await waiting.WaitAsync(_options.Timeout, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new IntakeTimeoutException(
                $"no outcome for request {requestId} of producer {_options.ProducerId} (volume {volume}, block {firstBlock}) within {_options.Timeout.TotalSeconds:0.#} s: "
                + "its fate is unknown; publish it again with the same request id to learn it (it is never written twice). "
                + "A request whose key is wrong or revoked, or whose producer id another key holds, is quarantined unanswered");
        }
    }

    /// <summary>
    /// <see cref="PublishAsync"/>, and on a timeout the same request (same id) published again, up to
    /// <paramref name="attempts"/> times in all: the answer is the request's one outcome however many copies were published.
    /// </summary>
    public async Task<IntakeOutcome> PublishWithRetryAsync(
        string volume, long firstBlock, ReadOnlyMemory<byte> data, string? requestId = null, int attempts = 3, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempts, 1);
        requestId ??= NewRequestId();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await PublishAsync(volume, firstBlock, data, requestId, ct).ConfigureAwait(false);
            }
            catch (IntakeTimeoutException) when (attempt < attempts)
            {
            }
        }
    }

    /// <summary>
    /// Publishes a request and returns once the intake topic holds it, without waiting for its outcome (see
    /// <see cref="WaitOutcomeAsync"/>). Checks the ids and the volume's name; everything else is the controller's to refuse.
    /// </summary>
    public async Task PublishOnlyAsync(string volume, long firstBlock, ReadOnlyMemory<byte> data, string requestId, CancellationToken ct = default)
    {
        if (!Names.IsValid(volume)) throw new ArgumentException($"volume name '{volume}' is not valid", nameof(volume));
        if (!IntakeCodec.IsValidId(requestId))
            throw new ArgumentException($"request id '{requestId}' is not valid: use 1 to {IntakeCodec.MaxIdLength} letters, digits, '.', '_', ':' or '-'", nameof(requestId));
        using var span = Source.StartActivity("intake publish", ActivityKind.Producer);
        span?.SetTag("messaging.system", "kafka").SetTag("messaging.destination.name", _options.RequestsTopic)
            .SetTag("tm.volume", volume).SetTag("tm.intake.request", requestId);
        var headers = new Headers
        {
            { IntakeHeaders.Request, IntakeCodec.EncodeRequest(_options.ProducerId, requestId, firstBlock, data.Span) },
            { IntakeHeaders.Key, _key },
        };
        if (span?.Id is { } id && span.IdFormat == ActivityIdFormat.W3C)
        {
            headers.Add(HeaderNames.TraceParent, Encoding.ASCII.GetBytes(id));
            if (span.TraceStateString is { Length: > 0 } state) headers.Add(HeaderNames.TraceState, Encoding.ASCII.GetBytes(state));
        }
        var message = new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes(volume), Value = data.ToArray(), Headers = headers };
        await _producer.ProduceAsync(_options.RequestsTopic, message, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The first outcome for <paramref name="requestId"/> this producer received (since it was created), waiting up to
    /// <paramref name="timeout"/> for one; <see cref="IntakeTimeoutException"/> if none came.
    /// </summary>
    public async Task<IntakeOutcome> WaitOutcomeAsync(string requestId, TimeSpan timeout, CancellationToken ct = default)
    {
        var waiting = ExpectAsync(requestId);
        try
        {
            return await waiting.WaitAsync(timeout, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new IntakeTimeoutException($"no outcome for request {requestId} of producer {_options.ProducerId} within {timeout.TotalSeconds:0.#} s");
        }
    }

    /// <summary>Publishes a raw message to the requests topic (a malformed one, in tests).</summary>
    public Task PublishRawAsync(byte[]? key, byte[]? value, Headers? headers, CancellationToken ct = default) =>
        _producer.ProduceAsync(_options.RequestsTopic, new Message<byte[]?, byte[]?> { Key = key, Value = value, Headers = headers ?? [] }, ct);

    private Task<IntakeOutcome> ExpectAsync(string requestId)
    {
        var tcs = _waiting.GetOrAdd(requestId, _ => new TaskCompletionSource<IntakeOutcome>(TaskCreationOptions.RunContinuationsAsynchronously));
        // Registered first, then looked up: an outcome that arrived before is found, one arriving now completes it.
        foreach (var o in _received)
        {
            if (o.RequestId == requestId)
            {
                tcs.TrySetResult(o);
                break;
            }
        }
        return tcs.Task;
    }

    private void ReadOutcomes()
    {
        while (!_stop.IsCancellationRequested)
        {
            ConsumeResult<byte[]?, byte[]?>? r;
            try
            {
                r = _consumer.Consume(TimeSpan.FromMilliseconds(100));
            }
            catch (ConsumeException)
            {
                continue; // a broker away: librdkafka reconnects
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            if (r?.Message?.Value is not { } value) continue;
            if (r.Message.Key is not { } key || !key.AsSpan().SequenceEqual(Encoding.UTF8.GetBytes(_options.ProducerId))) continue;
            if (IntakeCodec.DecodeOutcome(value) is not { } outcome || outcome.ProducerId != _options.ProducerId) continue;
            _received.Enqueue(outcome);
            _waiting.GetOrAdd(outcome.RequestId, _ => new TaskCompletionSource<IntakeOutcome>(TaskCreationOptions.RunContinuationsAsynchronously))
                .TrySetResult(outcome);
        }
    }

    private static List<int> OutcomePartitions(IProducer<byte[]?, byte[]?> producer, string topic, TimeSpan wait)
    {
        // A metadata request from a producer lets the broker create the topic where it creates topics on demand.
        using var admin = new DependentAdminClientBuilder(producer.Handle).Build();
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            try
            {
                var md = admin.GetMetadata(topic, TimeSpan.FromSeconds(5));
                if (md.Topics.FirstOrDefault(t => t.Topic == topic) is { Error.IsError: false, Partitions.Count: > 0 } t)
                    return [.. t.Partitions.Select(p => p.PartitionId).Order()];
            }
            catch (KafkaException) when (DateTime.UtcNow < deadline)
            {
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the outcomes topic {topic} did not appear within {wait.TotalSeconds:0} s (is a controller running with the intake on?)");
            Thread.Sleep(200);
        }
    }

    /// <summary>Stops reading outcomes and flushes what is still being published.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _reader.Join(TimeSpan.FromSeconds(5));
        _consumer.Close();
        _consumer.Dispose();
        _producer.Flush(TimeSpan.FromSeconds(5));
        _producer.Dispose();
        _stop.Dispose();
    }
}
