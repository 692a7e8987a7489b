/// The OpenAPI 3 description of the /v1 API, served at `GET /v1/openapi.json`: `openapi.json` beside this file
/// (docs/openapi.json links to it), compiled into the binary, so an installed reeld needs no resource bundle.
public enum OpenAPIDocument {
    public static let bytes: [UInt8] = PackageResources.openapi_json
    public static var json: String { String(decoding: bytes, as: UTF8.self) }
}
