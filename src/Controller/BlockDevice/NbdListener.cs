using System.Net;
using System.Net.Sockets;
using TaggedMirror.Nbd.Server;

namespace TaggedMirror.Controller.BlockDevice;

/// <summary>
/// Serves the volumes as NBD exports on <see cref="ControllerOptions.NbdListen"/> (its own socket, beside Kestrel's
/// HTTP port). A port that cannot be bound is logged and tried again every few seconds; the controller's other
/// work goes on.
/// </summary>
internal sealed class NbdListener(VolumeExports exports, ControllerOptions options, ILoggerFactory loggers) : BackgroundService
{
    private static readonly TimeSpan RetryBind = TimeSpan.FromSeconds(5);

    private readonly ILogger _logger = loggers.CreateLogger<NbdListener>();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (string.IsNullOrWhiteSpace(options.NbdListen))
        {
            _logger.LogInformation("NBD: off (Controller:NbdListen is empty)");
            return;
        }
        var endpoint = IPEndPoint.Parse(options.NbdListen);
        var server = new NbdServer(exports, options.Nbd, loggers.CreateLogger<NbdServer>());
        while (!stoppingToken.IsCancellationRequested)
        {
            Socket listener;
            try
            {
                listener = NbdServer.Listen(endpoint);
            }
            catch (SocketException ex)
            {
                _logger.LogError("NBD: cannot listen on {Endpoint}: {Reason}; trying again in {Retry} s", endpoint, ex.Message, RetryBind.TotalSeconds);
                await Task.Delay(RetryBind, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                continue;
            }
            using (listener)
            {
                _logger.LogInformation("NBD: volumes are exports on nbd://{Endpoint}/<volume> (TLS: {Tls}; clients: {Access})", listener.LocalEndPoint, options.Nbd.EffectiveTls,
                    options.Nbd.ClientCertificateAuthorities is not null ? "identified by certificate" : options.NbdAnonymous ? "not identified, every volume to each (Controller:NbdAnonymous)" : "none served");
                if (options.Nbd.ClientCertificateAuthorities is null && !options.NbdAnonymous)
                    _logger.LogWarning("NBD: no volume is served: {Reason}", VolumeExports.NotConfigured);
                await server.RunAsync(listener, stoppingToken);
            }
        }
    }
}
