using System.Text;
using Confluent.Kafka;
using TaggedMirror.Contracts.Bus;
using TaggedMirror.Contracts.TagTable;
using TaggedMirror.Contracts.Transactions;
using TaggedMirror.DeviceAgent.BlockStore;
using TaggedMirror.DeviceAgent.TagTable;
using TaggedMirror.Hosting.Telemetry;

namespace TaggedMirror.DeviceAgent.Consumption;

/// <summary>
/// Applies transactions to the block store and turns them into tag-table events (M3, M5). It changes
/// <see cref="DeviceState"/> as it goes; the caller commits the result or, on failure, reloads the state.
/// Replaying the same transactions from the same committed state writes the same bytes to the same
/// places and produces the same events: appends land by the committed extension length, not the file size.
/// </summary>
internal sealed class TransactionApplier(ObjectFiles files)
{
    /// <summary>
    /// Applies <paramref name="messages"/> into a new batch, or into <paramref name="into"/>, a batch not recorded yet
    /// whose messages came just before these (a rebuild's replay held open). Barrier and fence passes are recorded at the
    /// end of the call that passed them; replayed ones are not recorded at all, so a held batch of replays followed by
    /// any messages is the batch one call with all of them would have made.
    /// </summary>
    public AppliedBatch Apply(IReadOnlyList<ConsumeResult<byte[]?, byte[]?>> messages, DeviceState state, AppliedBatch? into = null)
    {
        var batch = into ?? new AppliedBatch();
        var now = DateTimeOffset.UtcNow;
        foreach (var m in messages)
        {
            batch.NextOffsets[m.Partition.Value] = m.Offset.Value + 1;
            // A rebuild replays what the device had applied before it began: the same bytes to the same places,
            // nothing recorded, nothing acknowledged, a refusal not quarantined again (it was the first time).
            var replay = state.Rebuild?.Replays(m.Partition.Value, m.Offset.Value) == true;
            var reason = ApplyOne(m, state, batch, now, replay, out var tag);
            if (reason is null) continue;
            if (replay) batch.ReplayRefused++;
            else batch.Refused.Add((m, reason, tag));
        }
        // Barriers are coalesced: only the latest per partition and controller matters, and only when it covers
        // more than the last one recorded (an idle controller sends the same barrier several times a second).
        foreach (var (key, b) in batch.Barriers)
        {
            if (state.RecordedBarriers.TryGetValue(key, out var last) && (last.Epoch, last.UpToSeq).CompareTo((b.Epoch, b.UpToSeq)) >= 0)
                continue;
            state.RecordedBarriers[key] = (b.Epoch, b.UpToSeq);
            Append(state, batch, b);
        }
        foreach (var f in batch.Fences.Values)
            Append(state, batch, f);
        // Recorded as events now: a later call into the same batch passes its own.
        batch.Barriers.Clear();
        batch.Fences.Clear();
        foreach (var (p, o) in batch.NextOffsets)
            state.NextOffsets[p] = o;
        return batch;
    }

    /// <summary>
    /// Applies one transaction, or returns why it is refused. A refused transaction changes nothing but the
    /// tokens it carries (its CRC held, so they are real): everything is checked before the object is written,
    /// created or extended, and a write the file system refuses for this transaction alone (its offset) is
    /// refused too. A failure of the device itself (disk full) is thrown: the batch is retried, never skipped.
    /// </summary>
    private string? ApplyOne(ConsumeResult<byte[]?, byte[]?> m, DeviceState state, AppliedBatch batch, DateTimeOffset now, bool replay, out string? tag)
    {
        tag = null;
        var headers = m.Message.Headers;
        var header = Get(headers, HeaderNames.Header);
        var objectBytes = Get(headers, HeaderNames.Object);
        var tokenBytes = Get(headers, HeaderNames.Tokens);
        var data = m.Message.Value ?? [];
        var read = TransactionCodec.TryRead(header, objectBytes, tokenBytes, data, out var h, out var error);
        // When only a shape rule failed, TryRead has decoded the fields and the CRC held: the tag is the sender's,
        // and the controller needs it to stop waiting for this copy. Barriers, fences and deletes are no copy of a
        // write: their tags are the controller's (controller, epoch, seq or 0), never a write's to settle.
        if (h != default && h.Kind is not (TransactionKind.Barrier or TransactionKind.Fence or TransactionKind.Delete)) tag = h.Tag.ToString();
        if (!read)
            return error;

        // Tokens first: they retire entries of earlier writes whatever this transaction turns out to be. A replayed
        // transaction's tokens were taken the first time (and token numbers are never given twice).
        for (var i = 0; !replay && i < tokenBytes.Length / 8; i++)
        {
            var token = TransactionCodec.ReadToken(tokenBytes, i);
            if (state.Live.Remove(token, out var entry))
            {
                Append(state, batch, new TagRetired(entry.Tag, token, "token"));
                batch.Retired++;
            }
        }
        if (h.Kind == TransactionKind.Barrier)
        {
            if (replay) return null; // passed and recorded the first time
            batch.Barriers[(m.Partition.Value, h.Tag.ControllerId)] =
                new BarrierPassed(h.Tag.ControllerId, h.Tag.Epoch, h.Tag.Seq, m.Partition.Value, m.Offset.Value);
            return null;
        }

        var objectId = Encoding.UTF8.GetString(objectBytes);
        if (!ObjectFiles.IsValidObjectId(objectId))
            return $"object id '{Printable(objectId)}' is not <volume>.<device> of valid names: it could name a file outside the data directory";
        // Owner fencing: a write from an older owner of the volume than one this partition already carried is
        // refused (its sender lost the lease); a newer owner's fence, or write once applied, raises the bar.
        var fenceKey = (objectId, m.Partition.Value);
        var ownerEpoch = state.OwnerEpochs.GetValueOrDefault(fenceKey);
        if (h.OwnerEpoch < ownerEpoch)
            return $"fenced: {objectId} has owner epoch {ownerEpoch} in partition {m.Partition.Value}; this {h.Kind.ToString().ToLowerInvariant()} of {h.Tag} is from owner epoch {h.OwnerEpoch}, which lost the volume";
        if (h.Kind == TransactionKind.Fence)
        {
            RaiseOwnerEpoch(state, batch, fenceKey, h.OwnerEpoch);
            if (replay) return null;
            batch.Fences[fenceKey] = new FencePassed(
                objectId, h.OwnerEpoch, h.Tag.ControllerId, h.Tag.Epoch, m.Partition.Value, m.Offset.Value);
            return null;
        }
        if (h.Kind == TransactionKind.Delete)
        {
            // The owner epoch stays raised after the object is gone: an older owner's write that comes later must
            // not bring it back.
            RaiseOwnerEpoch(state, batch, fenceKey, h.OwnerEpoch);
            Delete(objectId, h, m, state, batch, replay);
            return null;
        }

        // The object's geometry follows the sender's (ObjectGeometry.Accept: the same, or grown over its whole
        // extension), decided here and taken only once the write is done, so a refused transaction changes nothing.
        var known = state.Objects.TryGetValue(objectId, out var obj);
        var geometry = new ObjectGeometry(h.BlockSize, h.ObjectBlocks, 0);
        if (known && obj!.Geometry.Accept(h.BlockSize, h.ObjectBlocks, out geometry) is { } mismatch)
            return $"geometry mismatch for {objectId}: {mismatch}";
        var extension = geometry.ExtensionBlocks;

        // The controller places every write, appends included: an append lands where the header says, so a
        // mirror that missed an earlier append still puts later ones where its peers did (the gap is resynced).
        // Checked arithmetic: the codec refuses ranges whose bytes overflow, and a wrapped offset must never
        // reach a file even if a check upstream is wrong.
        var first = h.FirstBlock;
        long end, byteOffset;
        try
        {
            end = checked(first + h.BlockCount);
            byteOffset = checked(first * h.BlockSize);
            _ = checked(end * h.BlockSize);
        }
        catch (OverflowException)
        {
            return $"blocks [{first}, +{h.BlockCount}) of {h.BlockSize} bytes overflow a 64-bit byte offset";
        }
        switch (h.Kind)
        {
            case TransactionKind.Write or TransactionKind.Zero when end > h.ObjectBlocks:
                return $"blocks [{first}, {end}) are outside {objectId}, which has {h.ObjectBlocks} blocks";
            case TransactionKind.Append when first < h.ObjectBlocks:
                return $"append at block {first} is inside {objectId}'s base range of {h.ObjectBlocks} blocks";
            case TransactionKind.Append or TransactionKind.Repair when end - h.ObjectBlocks > extension:
                // A repair may restore an append this mirror missed, so it may extend the object too.
                extension = end - h.ObjectBlocks;
                break;
        }

        try
        {
            if (h.Kind == TransactionKind.Zero) files.Zero(objectId, byteOffset, checked(h.BlockCount * (long)h.BlockSize), h.BlockSize);
            else files.Write(objectId, byteOffset, data, h.BlockSize);
        }
        catch (IOException ex) when (StoreErrors.IsTransactionSpecific(ex))
        {
            return $"the file system refuses blocks [{first}, {end}) of {objectId}: {ex.Message}";
        }
        if (!known)
        {
            obj = new StorageObject(objectId, h.BlockSize, h.ObjectBlocks, extension, needsFullCopy: false);
            state.Objects[objectId] = obj;
            batch.ChangedObjects[objectId] = obj;
        }
        else if (obj!.Take(geometry with { ExtensionBlocks = extension }))
        {
            batch.ChangedObjects[objectId] = obj;
        }
        RaiseOwnerEpoch(state, batch, fenceKey, h.OwnerEpoch);
        if (replay)
        {
            // Its block-writer row is in the table from the first time: a rebuild keeps the table, which its replay of the
            // same transactions in the same order would write again row for row (docs/design.md, "Who wrote a block").
            batch.Replayed++;
            batch.ReplayedBytes += data.Length;
            return null;
        }
        var principal = PrincipalOf(headers);
        // Who wrote these blocks, kept in the block-writer table (docs/design.md, "Who wrote a block").
        batch.BlockWrites.Add(new BlockWriteRow(objectId, first, h.BlockCount, h.Tag, h.Kind, h.OwnerEpoch, principal, m.Partition.Value, m.Offset.Value));
        batch.DataBytes += data.Length;
        var token2 = state.StreamVersion + 1;
        Append(state, batch, new TagRecorded(
            h.Tag, h.Kind, objectId, first, h.BlockCount, h.Kind == TransactionKind.Append, m.Partition.Value, m.Offset.Value, token2,
            KafkaTracing.TraceParentOf(headers), h.OwnerEpoch, RequestIdOf(headers), principal));
        state.Live[token2] = new LiveEntry(h.Tag, objectId, first, h.BlockCount, now);
        batch.Acknowledgements.Add(new AppliedEntry(h.Tag.ToString(), objectId, first, h.BlockCount, token2));
        return null;
    }

    /// <summary>
    /// Applies a delete: the object's files, its geometry and (the first time) its live entries go, and
    /// <c>object_deleted</c> says so, also for an object this device does not have. Not a write: no entry, no token,
    /// no acknowledgement.
    /// <para>
    /// Crash safety. The files are deleted now, in the order of the batch's transactions, and the batch is recorded
    /// later. A crash in between leaves the files gone (or, after a power loss, perhaps back) while PostgreSQL still
    /// has the object, its live entries and the offset before the batch. The agent reloads that state and applies
    /// the log again from that offset: the object's writes before the delete are written again (into whatever file
    /// there is, a new one if none), perhaps recorded in batches of their own, and then the delete, in the same
    /// partition after them, is reached again and deletes the files again (deleting files that are not there is
    /// fine), retires the entries, drops the object and records the event, as a run without the crash would have.
    /// A write after the delete lands in a file created after the deletion, in either run, because the deletion is
    /// not deferred to the end of the batch. Until the delete is applied again the object reads as zeros where its
    /// earlier bytes were; nothing reads it then, as its owner deletes only an object it no longer reads (a detached
    /// or deleted volume's) or does not read yet (a mirror being attached). Once recorded, the deletion
    /// is durable: <see cref="ObjectFiles.FlushWritten"/> syncs the directory before the commit, so a recorded
    /// delete's files never come back to be read, or written into, as the object created again.
    /// </para>
    /// <para>
    /// A rebuild replays it as the first time: files and object gone, owner epoch raised, nothing recorded. Live
    /// entries are left alone then: those of the object before the delete were retired the first time, and any
    /// live now belong to writes after it.
    /// </para>
    /// </summary>
    private void Delete(string objectId, in TransactionHeader h, ConsumeResult<byte[]?, byte[]?> m, DeviceState state, AppliedBatch batch, bool replay)
    {
        files.Delete(objectId);
        state.Objects.Remove(objectId);
        batch.ChangedObjects.Remove(objectId);
        batch.DeletedObjects.Add(objectId);
        if (replay)
        {
            // The block-writer rows the delete removed the first time are gone; those left are of writes after it.
            batch.Replayed++;
            return;
        }
        // Its writes earlier in this batch are gone with it: the table's rows of the object are deleted with the batch.
        batch.BlockWrites.RemoveAll(w => w.ObjectId == objectId);
        batch.WritersDeleted.Add(objectId);
        var tokens = new List<long>();
        foreach (var (token, entry) in state.Live)
        {
            if (entry.ObjectId == objectId) tokens.Add(token);
        }
        tokens.Sort();
        foreach (var token in tokens)
        {
            state.Live.Remove(token, out var entry);
            Append(state, batch, new TagRetired(entry!.Tag, token, "object deleted"));
        }
        batch.Retired += tokens.Count;
        Append(state, batch, new ObjectDeleted(objectId, h.Tag, m.Partition.Value, m.Offset.Value, tokens.Count));
    }

    private static void RaiseOwnerEpoch(DeviceState state, AppliedBatch batch, (string, int) key, long ownerEpoch)
    {
        if (ownerEpoch <= state.OwnerEpochs.GetValueOrDefault(key)) return;
        state.OwnerEpochs[key] = ownerEpoch;
        batch.OwnerEpochs[key] = ownerEpoch;
    }

    /// <summary>Records a refusal in the device's stream, with the batch (the dead-letter topic may not have it).</summary>
    public static void RecordQuarantined(DeviceState state, AppliedBatch batch, TransactionQuarantined e) =>
        Append(state, batch, e);

    // Control characters (a NUL, a newline) would garble the reason in logs and headers.
    private static string Printable(string s) =>
        string.Concat(s.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));

    private static void Append(DeviceState state, AppliedBatch batch, object e)
    {
        batch.Events.Add(e);
        state.StreamVersion++;
    }

    /// <summary>The intake request a write carries (<see cref="HeaderNames.RequestId"/>), recorded with its entry; null when none or not printable ASCII.</summary>
    private static string? RequestIdOf(Headers? headers)
    {
        var bytes = Get(headers, HeaderNames.RequestId);
        if (bytes.IsEmpty || bytes.Length > 300 || !Ascii.IsValid(bytes) || bytes.IndexOfAnyInRange((byte)0, (byte)31) >= 0) return null;
        return Encoding.ASCII.GetString(bytes);
    }

    /// <summary>Who asked for the write (<see cref="HeaderNames.Principal"/>); null when absent, too long or not printable ASCII.</summary>
    private static string? PrincipalOf(Headers? headers)
    {
        var bytes = Get(headers, HeaderNames.Principal);
        if (bytes.IsEmpty || bytes.Length > HeaderNames.MaxPrincipalBytes || bytes.IndexOfAnyExceptInRange((byte)32, (byte)126) >= 0) return null;
        return Encoding.ASCII.GetString(bytes);
    }

    private static ReadOnlySpan<byte> Get(Headers? headers, string key) =>
        headers is not null && headers.TryGetLastBytes(key, out var bytes) ? bytes : default;
}
