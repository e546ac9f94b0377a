using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;

namespace TaggedMirror.Hosting.Http;

/// <summary>
/// Request bodies, read here rather than bound by the framework, whose refusals of malformed JSON, numbers out of range
/// or a missing content type are an empty 400 or 415: each refusal here is a sentence saying what was wrong. Used by
/// the controller's API and the agents' endpoints alike.
/// </summary>
public static class JsonBodies
{
    // Web defaults, but a number must be a JSON number: "blocks": "16" is refused like any other mistake.
    private static readonly JsonSerializerOptions RequestJson = new(JsonSerializerDefaults.Web) { NumberHandling = JsonNumberHandling.Strict };

    /// <summary>The body as <typeparamref name="T"/>, or the refusal to answer. <paramref name="shape"/> describes the expected body.</summary>
    public static async Task<(T? Body, IResult? Refusal)> ReadAsync<T>(HttpRequest request, string shape, string fields, CancellationToken ct)
        where T : class
    {
        if (!request.HasJsonContentType())
        {
            return (null, Results.Problem($"the body must be JSON (Content-Type: application/json), not '{request.ContentType}'",
                statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type"));
        }
        try
        {
            var body = await JsonSerializer.DeserializeAsync<T>(request.Body, RequestJson, ct).ConfigureAwait(false);
            return body is null ? (null, BadRequest($"a JSON body {shape} is required")) : (body, null);
        }
        catch (JsonException ex)
        {
            return (null, BadRequest(ex.Path is null or "$"
                ? $"the body is not a JSON object {shape}"
                : $"the value at {ex.Path} is not valid: {fields}"));
        }
    }

    private static IResult BadRequest(string detail) => Results.Problem(detail, statusCode: StatusCodes.Status400BadRequest, title: "Bad request");
}
