using TaggedMirror.Contracts.Api;

namespace TaggedMirror.DeviceAgent.Consumption;

/// <summary>
/// Rebuild requests from the controller (<c>POST /rebuild</c>) to the apply loop, which takes one between two batches
/// (it alone writes the block store and the device's records) and answers with the rebuild's progress.
/// </summary>
internal sealed class RebuildRequests
{
    private readonly Lock _lock = new();
    private Request? _pending;

    /// <summary>Asks the apply loop to begin rebuild <paramref name="id"/> (or to report it, if it is that one already).</summary>
    public Task<RebuildAnswer> RequestAsync(string id)
    {
        lock (_lock)
        {
            if (_pending is { } waiting && waiting.Id == id) return waiting.Answer.Task;
            _pending?.Answer.TrySetResult(new RebuildAnswer(null, "another rebuild was asked for"));
            _pending = new Request(id);
            return _pending.Answer.Task;
        }
    }

    public bool TryTake(out Request request)
    {
        lock (_lock)
        {
            request = _pending!;
            _pending = null;
            return request is not null;
        }
    }

    internal sealed class Request(string id)
    {
        public string Id { get; } = id;

        public TaskCompletionSource<RebuildAnswer> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>The rebuild's progress, or why it was refused.</summary>
internal sealed record RebuildAnswer(DeviceRebuildProgress? Progress, string? Refusal);
