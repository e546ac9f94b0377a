namespace TaggedMirror.Integration.Tests.Harness;

internal static class Eventually
{
    /// <summary>Polls until <paramref name="condition"/> holds; fails with <paramref name="describe"/> after the timeout.</summary>
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> describe)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                if (await condition()) return;
            }
            catch (Exception ex) when (ex is HttpRequestException or Npgsql.NpgsqlException or System.Net.Sockets.SocketException && DateTime.UtcNow < deadline)
            {
            }
            if (DateTime.UtcNow > deadline) Assert.Fail(describe());
            await Task.Delay(100);
        }
    }
}
