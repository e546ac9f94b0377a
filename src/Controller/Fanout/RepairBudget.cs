namespace TaggedMirror.Controller.Fanout;

/// <summary>
/// Repairs in flight to one device, bounded in bytes, whichever volume they are for: one repair whatever its size,
/// and more while their bytes together stay within the budget; waiters go in arrival order, so a full copy's large
/// step is not passed over for ever by small ones. Writes are bounded by the lag bound, repairs by this: after a
/// truncation every volume on the device needs a full copy, and their steps sent all at once outran the log's
/// retention, fell off before the device applied them, and truncated it again, over and over. (It was one repair
/// at a time; a resync of many small missed writes then took one round trip each.)
/// </summary>
internal sealed class RepairBudget(long budgetBytes)
{
    private readonly Lock _lock = new();
    private readonly LinkedList<(long Bytes, TaskCompletionSource Admitted)> _waiting = new();
    private long _bytes;
    private int _count;

    /// <summary>Bytes of the repairs in flight.</summary>
    public long BytesInFlight
    {
        get { lock (_lock) return _bytes; }
    }

    /// <summary>Waits until a repair of <paramref name="bytes"/> may go; dispose the result once it is applied (or failed).</summary>
    public async ValueTask<IDisposable> EnterAsync(long bytes, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        LinkedListNode<(long Bytes, TaskCompletionSource Admitted)> node;
        lock (_lock)
        {
            if (_waiting.Count == 0 && Fits(bytes))
            {
                Admit(bytes);
                return new Lease(this, bytes);
            }
            node = _waiting.AddLast((bytes, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)));
        }
        await using (ct.Register(() => Cancel(node, ct)))
        {
            await node.Value.Admitted.Task;
        }
        return new Lease(this, bytes);
    }

    private bool Fits(long bytes) => _count == 0 || _bytes + bytes <= budgetBytes;

    private void Admit(long bytes)
    {
        _bytes += bytes;
        _count++;
    }

    private void Cancel(LinkedListNode<(long Bytes, TaskCompletionSource Admitted)> node, CancellationToken ct)
    {
        lock (_lock)
        {
            // Admitted already (then the caller holds a lease and releases it), or still waiting: leave the queue.
            if (node.List is null || !node.Value.Admitted.TrySetCanceled(ct)) return;
            _waiting.Remove(node);
            Pump();
        }
    }

    private void Leave(long bytes)
    {
        lock (_lock)
        {
            _bytes -= bytes;
            _count--;
            Pump();
        }
    }

    private void Pump()
    {
        while (_waiting.First is { } first && Fits(first.Value.Bytes))
        {
            _waiting.RemoveFirst();
            Admit(first.Value.Bytes);
            first.Value.Admitted.TrySetResult();
        }
    }

    private sealed class Lease(RepairBudget budget, long bytes) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) budget.Leave(bytes);
        }
    }
}
