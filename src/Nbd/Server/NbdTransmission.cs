using System.Diagnostics;
using Microsoft.Extensions.Logging;
using TaggedMirror.Nbd.Protocol;

namespace TaggedMirror.Nbd.Server;

/// <summary>
/// The transmission phase (spec "Transmission"): requests are read one after another and served at once, many in
/// flight, each answered when done (replies in any order, by cookie, one reply's bytes never interleaved with
/// another's). Bounded by <see cref="NbdServerOptions.MaxRequestsInFlight"/> and
/// <see cref="NbdServerOptions.MaxBytesInFlight"/>: when full, the socket is not read, and TCP holds the client back.
/// <para>
/// A request the server can refuse in frame gets <c>EINVAL</c> (or <c>ENOSPC</c> for a write past the end, the
/// spec's choice) and the connection goes on. One it cannot trust the framing of (a wrong magic, a command it does
/// not know, a payload beyond the maximum, an offset and length that overflow 64 bits) is refused and the connection
/// closed: nothing of it reaches the export. DISC, or the client closing, ends reading; requests in flight finish and
/// are answered (those not done within <see cref="NbdServerOptions.DrainTimeout"/> are cancelled).
/// </para>
/// </summary>
internal sealed class NbdTransmission(Stream input, Stream output, NbdSession session, NbdServerOptions options, string peer, ILogger logger)
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly INbdExport _export = session.Export;

    public async Task RunAsync(CancellationToken stop)
    {
        using var requests = new SemaphoreSlim(options.MaxRequestsInFlight);
        using var bytes = new ByteBudget(options.MaxBytesInFlight);
        using var connection = new CancellationTokenSource();
        var running = new HashSet<Task>();
        var header = new byte[NbdRequest.Size];
        try
        {
            while (true)
            {
                if (!await ReadOrEndAsync(header, stop).ConfigureAwait(false))
                {
                    logger.LogDebug("NBD {Peer}: closed the connection without NBD_CMD_DISC", peer);
                    return;
                }
                if (!NbdRequest.TryRead(header, out var request))
                    throw new NbdProtocolException($"a request does not start with the request magic (got 0x{Convert.ToHexString(header.AsSpan(0, 4))})");
                if (request.Command == NbdCommand.Disconnect) return;

                var (error, reason, close) = Check(request);
                byte[]? payload = null;
                if (request.Command == NbdCommand.Write && !close)
                {
                    // Read whole before anything is done with it (even to refuse it: the stream stays in frame).
                    await bytes.TakeAsync(request.Length, stop).ConfigureAwait(false);
                    payload = new byte[request.Length];
                    try
                    {
                        await input.ReadExactlyAsync(payload, stop).ConfigureAwait(false);
                    }
                    catch (EndOfStreamException)
                    {
                        throw new NbdProtocolException($"the connection ended inside the {request.Length}-byte payload of a WRITE at {request.Offset}; nothing of it was written");
                    }
                }
                if (error != NbdError.None)
                {
                    if (payload is not null) bytes.Give(payload.Length);
                    NbdTelemetry.Requests.Add(1, Command(request), new("tm.outcome", ErrorName(error)));
                    await ReplyErrorAsync(request, error, reason).ConfigureAwait(false);
                    if (close) throw new NbdProtocolException(reason);
                    logger.LogDebug("NBD {Peer}: {Command} at {Offset}+{Length} refused: {Reason}", peer, request.Command, request.Offset, request.Length, reason);
                    continue;
                }
                await requests.WaitAsync(stop).ConfigureAwait(false);
                var held = request.Command == NbdCommand.Write ? request.Length : 0L;
                if (request.Command == NbdCommand.Read)
                {
                    await bytes.TakeAsync(request.Length, stop).ConfigureAwait(false);
                    held = request.Length;
                }
                var task = ServeAsync(request, payload, connection.Token);
                lock (running) running.Add(task);
                _ = task.ContinueWith(
                    t =>
                    {
                        lock (running) running.Remove(t);
                        if (held > 0) bytes.Give(held);
                        requests.Release();
                    },
                    CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
        finally
        {
            Task[] left;
            lock (running) left = [.. running];
            if (left.Length > 0)
            {
                var drained = Task.WhenAll(left);
                if (await Task.WhenAny(drained, Task.Delay(options.DrainTimeout, CancellationToken.None)).ConfigureAwait(false) != drained)
                {
                    logger.LogWarning("NBD {Peer}: {Count} requests still running {Timeout} after the connection ended; cancelling them", peer, left.Length, options.DrainTimeout);
                    await connection.CancelAsync().ConfigureAwait(false);
                    await Task.WhenAll(left).WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }
            }
        }
    }

    /// <summary>What is wrong with a request, if anything: the error, the reason, and whether the connection must close after the reply.</summary>
    private (NbdError Error, string Reason, bool Close) Check(NbdRequest r)
    {
        var allowed = NbdCommandFlags.Fua;
        switch (r.Command)
        {
            case NbdCommand.Read:
                allowed |= NbdCommandFlags.DontFragment;
                break;
            case NbdCommand.Write:
            case NbdCommand.Trim:
            case NbdCommand.Flush:
                break;
            case NbdCommand.WriteZeroes:
                allowed |= NbdCommandFlags.NoHole;
                break;
            case NbdCommand.BlockStatus:
                allowed |= NbdCommandFlags.RequestOne;
                break;
            case NbdCommand.Cache:
                return (NbdError.InvalidArgument, "NBD_CMD_CACHE is not offered by this export", false);
            default:
                // Its framing is unknown (a payload may follow): nothing after it can be trusted.
                return (NbdError.InvalidArgument, $"unknown command {(ushort)r.Command}", true);
        }
        if (r.Command is NbdCommand.Read or NbdCommand.Write && r.Length > session.MaxPayload)
            return (NbdError.InvalidArgument, $"{r.Command} of {r.Length} bytes is beyond the maximum payload of {session.MaxPayload} bytes", true);
        if (r.Offset > ulong.MaxValue - r.Length)
            return (NbdError.InvalidArgument, $"{r.Command} at offset {r.Offset} with length {r.Length} overflows 64 bits", true);
        if ((r.Flags & ~allowed) != 0 || (r.Flags.HasFlag(NbdCommandFlags.DontFragment) && !session.Structured))
            return (NbdError.InvalidArgument, $"flags 0x{(ushort)r.Flags:x4} are not valid for {r.Command}", false);
        if (r.Command == NbdCommand.Flush)
            return r.Offset == 0 && r.Length == 0 ? (NbdError.None, "", false) : (NbdError.InvalidArgument, "NBD_CMD_FLUSH must have offset and length 0", false);
        if (r.Length == 0)
            return (NbdError.InvalidArgument, $"{r.Command} of length 0", false);
        var min = _export.MinimumBlockSize;
        if (r.Offset % min != 0 || r.Length % min != 0)
            return (NbdError.InvalidArgument, $"{r.Command} at {r.Offset}+{r.Length} is not aligned to the export's {min}-byte blocks", false);
        if (!r.Within(_export.Size))
        {
            // The spec's choice: a write past the end is "no space", anything else past the end is invalid.
            var error = r.Command is NbdCommand.Write or NbdCommand.WriteZeroes ? NbdError.NoSpace : NbdError.InvalidArgument;
            return (error, $"{r.Command} at {r.Offset}+{r.Length} runs past the end of the {_export.Size}-byte export", false);
        }
        if (_export.ReadOnly && r.Command is NbdCommand.Write or NbdCommand.WriteZeroes or NbdCommand.Trim)
            return (NbdError.NotPermitted, $"export {_export.Name} is read-only for this connection", false);
        if (r.Command == NbdCommand.BlockStatus && !session.Allocation)
            return (NbdError.InvalidArgument, "NBD_CMD_BLOCK_STATUS without the base:allocation context chosen", false);
        return (NbdError.None, "", false);
    }

    private async Task ServeAsync(NbdRequest r, byte[]? payload, CancellationToken ct)
    {
        // Off the reader's path at once: the reader goes on to the next request while this one runs.
        await Task.Yield();
        using var span = NbdTelemetry.Source.StartActivity("nbd " + CommandName(r.Command), ActivityKind.Server);
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag("nbd.export", _export.Name).SetTag("nbd.offset", (long)r.Offset).SetTag("nbd.length", (long)r.Length);
            span.SetTag("nbd.fua", r.Flags.HasFlag(NbdCommandFlags.Fua)).SetTag("net.peer", peer);
        }
        var fua = r.Flags.HasFlag(NbdCommandFlags.Fua);
        var outcome = "ok";
        try
        {
            switch (r.Command)
            {
                case NbdCommand.Read:
                    var data = await _export.ReadAsync(r.Offset, (int)r.Length, ct).ConfigureAwait(false);
                    if (data.Length != r.Length) throw new NbdException(NbdError.Io, $"the export returned {data.Length} bytes for a read of {r.Length}");
                    await ReplyReadAsync(r, data).ConfigureAwait(false);
                    NbdTelemetry.Bytes.Add(data.Length, Command(r));
                    return;
                case NbdCommand.Write:
                    await _export.WriteAsync(r.Offset, payload!, fua, ct).ConfigureAwait(false);
                    NbdTelemetry.Bytes.Add(payload!.Length, Command(r));
                    break;
                case NbdCommand.Flush:
                    await _export.FlushAsync(ct).ConfigureAwait(false);
                    break;
                case NbdCommand.Trim:
                    await _export.TrimAsync(r.Offset, r.Length, fua, ct).ConfigureAwait(false);
                    break;
                case NbdCommand.WriteZeroes:
                    await _export.WriteZeroesAsync(r.Offset, r.Length, fua, ct).ConfigureAwait(false);
                    break;
                case NbdCommand.BlockStatus:
                    var extents = Reply(r, await _export.BlockStatusAsync(r.Offset, r.Length, ct).ConfigureAwait(false));
                    await SendAsync(NbdWire.BlockStatusChunk(r.Cookie, 1, extents), null).ConfigureAwait(false);
                    span?.SetTag("nbd.extents", extents.Count);
                    return;
            }
            await ReplyOkAsync(r).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            outcome = "cancelled";   // the connection is gone: nobody to answer
        }
        catch (NbdException ex)
        {
            outcome = ErrorName(ex.Error);
            span?.SetStatus(ActivityStatusCode.Error, ex.Message);
            if (ex.Error == NbdError.Io)
            {
                // The client sees only EIO (most print no server message): the reason is in the controller's log.
                logger.LogWarning("NBD {Peer}: {Command} at {Offset}+{Length} failed with EIO: {Reason}", peer, r.Command, r.Offset, r.Length, ex.Message);
            }
            await ReplyErrorAsync(r, ex.Error, ex.Message).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not IOException and not ObjectDisposedException)
        {
            outcome = ErrorName(NbdError.Io);
            span?.SetStatus(ActivityStatusCode.Error, ex.Message);
            logger.LogDebug(ex, "NBD {Peer}: {Command} at {Offset}+{Length} failed", peer, r.Command, r.Offset, r.Length);
            await ReplyErrorAsync(r, NbdError.Io, ex.Message).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            outcome = "disconnected";   // the reply could not be sent
        }
        finally
        {
            span?.SetTag("tm.outcome", outcome);
            NbdTelemetry.Requests.Add(1, Command(r), new("tm.outcome", outcome));
        }
    }

    /// <summary>The most descriptors one reply carries (the spec's bound on a chunk).</summary>
    internal const int MaxExtents = 1 << 20;

    /// <summary>
    /// What the export's extents become on the wire: never past the request (the last one cut), at most
    /// <see cref="MaxExtents"/>, exactly one under <c>REQ_ONE</c>. An export that breaks its contract (no extent, an empty
    /// one, one not a multiple of the block size before the last) is an error, never a reply a client could misread.
    /// </summary>
    private List<NbdExtent> Reply(NbdRequest r, IReadOnlyList<NbdExtent> extents)
    {
        var one = r.Flags.HasFlag(NbdCommandFlags.RequestOne);
        var reply = new List<NbdExtent>(Math.Min(extents.Count, one ? 1 : MaxExtents));
        var left = r.Length;
        foreach (var e in extents)
        {
            if (e.Length == 0 || e.Length % _export.MinimumBlockSize != 0)
                throw new NbdException(NbdError.Io, $"export {_export.Name} reported an extent of {e.Length} bytes, not a nonzero multiple of {_export.MinimumBlockSize}");
            var length = Math.Min(e.Length, left);
            reply.Add(e with { Length = length });
            left -= length;
            if (left == 0 || one || reply.Count == MaxExtents) break;
        }
        if (reply.Count == 0) throw new NbdException(NbdError.Io, $"export {_export.Name} reported no extent");
        return reply;
    }

    private Task ReplyOkAsync(NbdRequest r)
    {
        // A simple reply answers any command but READ, structured or not: 16 bytes.
        var reply = new byte[NbdWire.SimpleReplySize];
        NbdWire.WriteSimpleReply(reply, NbdError.None, r.Cookie);
        return SendAsync(reply, null);
    }

    private Task ReplyReadAsync(NbdRequest r, byte[] data)
    {
        if (session.Structured)
        {
            // One chunk with the whole range, the last of the reply: the data is all in hand before its header goes out.
            var prefix = new byte[NbdWire.OffsetDataPrefixSize];
            NbdWire.WriteOffsetDataPrefix(prefix, r.Cookie, r.Offset, data.Length);
            return SendAsync(prefix, data);
        }
        var reply = new byte[NbdWire.SimpleReplySize];
        NbdWire.WriteSimpleReply(reply, NbdError.None, r.Cookie);
        return SendAsync(reply, data);
    }

    private async Task ReplyErrorAsync(NbdRequest r, NbdError error, string message)
    {
        try
        {
            if (session.Structured)
            {
                await SendAsync(NbdWire.ErrorChunk(error, r.Cookie, message), null).ConfigureAwait(false);
                return;
            }
            var reply = new byte[NbdWire.SimpleReplySize];
            NbdWire.WriteSimpleReply(reply, error, r.Cookie);
            await SendAsync(reply, null).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            // The client is gone; the reader notices.
        }
    }

    /// <summary>One reply, its bytes together on the wire.</summary>
    private async Task SendAsync(byte[] head, byte[]? data)
    {
        await _writeLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            await output.WriteAsync(head, CancellationToken.None).ConfigureAwait(false);
            if (data is { Length: > 0 }) await output.WriteAsync(data, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task<bool> ReadOrEndAsync(Memory<byte> buffer, CancellationToken ct)
    {
        var first = await input.ReadAsync(buffer, ct).ConfigureAwait(false);
        if (first == 0) return false;
        if (first < buffer.Length)
        {
            try
            {
                await input.ReadExactlyAsync(buffer[first..], ct).ConfigureAwait(false);
            }
            catch (EndOfStreamException)
            {
                throw new NbdProtocolException($"the connection ended inside a request header ({first} of {buffer.Length} bytes)");
            }
        }
        return true;
    }

    private static KeyValuePair<string, object?> Command(NbdRequest r) => new("nbd.command", CommandName(r.Command));

    private static string CommandName(NbdCommand command) => command switch
    {
        NbdCommand.Read => "read",
        NbdCommand.Write => "write",
        NbdCommand.Flush => "flush",
        NbdCommand.Trim => "trim",
        NbdCommand.WriteZeroes => "write_zeroes",
        NbdCommand.BlockStatus => "block_status",
        NbdCommand.Cache => "cache",
        NbdCommand.Disconnect => "disc",
        _ => "unknown",
    };

    private static string ErrorName(NbdError error) => error switch
    {
        NbdError.InvalidArgument => "EINVAL",
        NbdError.NoSpace => "ENOSPC",
        NbdError.Io => "EIO",
        NbdError.NotPermitted => "EPERM",
        NbdError.NotSupported => "ENOTSUP",
        NbdError.Overflow => "EOVERFLOW",
        NbdError.Shutdown => "ESHUTDOWN",
        NbdError.NoMemory => "ENOMEM",
        _ => ((uint)error).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
