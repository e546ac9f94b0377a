namespace TaggedMirror.Hosting.Tests;

/// <summary>One run at a time per key, its answer shared by the callers that arrived while it ran.</summary>
public sealed class SingleFlightTests
{
    [Fact]
    public async Task callers_that_arrive_during_a_run_share_it_and_one_that_arrives_after_starts_the_next()
    {
        var flight = new SingleFlight<string, int>(StringComparer.Ordinal);
        var runs = 0;
        var release = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<int> Run(string _)
        {
            Interlocked.Increment(ref runs);
            return release.Task;
        }

        var waiting = Enumerable.Range(0, 100).Select(_ => flight.RunAsync("a", Run, CancellationToken.None)).ToList();
        var other = flight.RunAsync("b", _ => Task.FromResult(-1), CancellationToken.None);   // another key runs on its own
        Assert.Equal(-1, await other);
        Assert.All(waiting, t => Assert.False(t.IsCompleted));
        release.SetResult(7);
        Assert.All(await Task.WhenAll(waiting), v => Assert.Equal(7, v));
        Assert.Equal(1, runs);

        Assert.Equal(8, await flight.RunAsync("a", _ => Task.FromResult(8), CancellationToken.None));
    }

    /// <summary>
    /// Many times over: the run used to be forgotten only after its callers were answered, so a caller quick to ask
    /// again could be handed the failed run's exception a second time (seen once in a suite run).
    /// </summary>
    [Fact]
    public async Task a_failed_run_fails_every_caller_of_it_and_is_not_kept()
    {
        for (var round = 0; round < 500; round++)
        {
            var flight = new SingleFlight<int, string>();
            var fail = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            var callers = Enumerable.Range(0, 10).Select(_ => flight.RunAsync(1, _ => fail.Task, CancellationToken.None)).ToList();
            fail.SetException(new TimeoutException("slow"));
            foreach (var c in callers) Assert.Equal("slow", (await Assert.ThrowsAsync<TimeoutException>(() => c)).Message);
            Assert.Equal("again", await flight.RunAsync(1, _ => Task.FromResult("again"), CancellationToken.None));
        }
    }

    [Fact]
    public async Task a_caller_answered_that_asks_again_starts_the_next_run()
    {
        for (var round = 0; round < 500; round++)
        {
            var flight = new SingleFlight<int, int>();
            var release = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            var first = flight.RunAsync(1, _ => release.Task, CancellationToken.None);
            release.SetResult(1);
            Assert.Equal(1, await first);
            Assert.Equal(2, await flight.RunAsync(1, _ => Task.FromResult(2), CancellationToken.None));
        }
    }

    [Fact]
    public async Task a_caller_that_gives_up_leaves_the_run_to_the_others()
    {
        var flight = new SingleFlight<int, int>();
        var release = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var cancel = new CancellationTokenSource();
        var impatient = flight.RunAsync(1, _ => release.Task, cancel.Token);
        var patient = flight.RunAsync(1, _ => throw new InvalidOperationException("a second run"), CancellationToken.None);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => impatient);
        release.SetResult(3);
        Assert.Equal(3, await patient);
    }

    [Fact]
    public async Task a_run_that_throws_before_its_first_await_is_an_answer_too()
    {
        var flight = new SingleFlight<int, int>();
        await Assert.ThrowsAsync<ArgumentException>(() => flight.RunAsync(1, _ => throw new ArgumentException("at once"), CancellationToken.None));
        Assert.Equal(2, await flight.RunAsync(1, _ => Task.FromResult(2), CancellationToken.None));
    }
}
