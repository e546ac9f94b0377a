using TaggedMirror.Hosting.Access;

namespace TaggedMirror.Controller.Access;

/// <summary>Puts the cluster's <see cref="ServiceSecret"/> on every request the controller makes to a device agent.</summary>
internal sealed class ServiceSecretHandler(ServiceSecret secret) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Remove(ServiceSecret.Header);
        request.Headers.Add(ServiceSecret.Header, await secret.CurrentAsync(cancellationToken));
        return await base.SendAsync(request, cancellationToken);
    }
}
