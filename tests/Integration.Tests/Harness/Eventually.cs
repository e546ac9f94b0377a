namespace TaggedMirror.Integration.Tests.Harness;

internal static class Eventually
{
    /// <summary>Polls until <paramref name="condition"/> holds; fails with <paramref name="describe"/> after the timeout.</summary>
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> describe)
    {
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (true)
        {
            try
            {
                if (await condition()) return;
                last = null;
            }
            catch (Exception ex) when (ex is HttpRequestException or Npgsql.NpgsqlException or System.Net.Sockets.SocketException)
            {
                last = ex;
            }
            // A condition that could not even be asked (a service not listening, the database away) fails with what
            // it last threw beside the description, so the logs the description carries are not lost.
            if (DateTime.UtcNow > deadline) Assert.Fail(last is null ? describe() : $"{describe()}\n(last attempt threw {last.GetType().Name}: {last.Message})");
            await Task.Delay(100);
        }
    }
}
