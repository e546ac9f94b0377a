namespace TaggedMirror.Controller.Api;

/// <summary>Every refusal is a problem document with a sentence that says what was wrong.</summary>
internal static class ApiErrors
{
    public static IResult BadRequest(string detail) => Results.Problem(detail, statusCode: StatusCodes.Status400BadRequest, title: "Bad request");

    public static IResult NotFound(string detail) => Results.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Not found");

    public static IResult Conflict(string detail) => Results.Problem(detail, statusCode: StatusCodes.Status409Conflict, title: "Conflict");

    public static IResult TooLarge(string detail) => Results.Problem(detail, statusCode: StatusCodes.Status413PayloadTooLarge, title: "Too large");

    public static IResult UnsupportedMediaType(string detail) => Results.Problem(detail, statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type");

    public static IResult Unavailable(string detail) => Results.Problem(detail, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Unavailable");
}
