import Glibc

/// How to reach registries: TLS, credentials, retries, parallelism, platform.
public struct RegistryOptions: Sendable {
    /// Verify the registry's TLS certificate (`--tls-verify=false` turns this off, and then a
    /// registry that does not speak TLS at all is reached over plain HTTP, as podman does).
    public var tlsVerify = true
    /// A directory of `*.crt` CA files (and a client `*.cert`/`*.key` pair); default
    /// `/etc/containers/certs.d/HOST[:PORT]`, then `/etc/docker/certs.d/HOST[:PORT]`.
    public var certDir: String?
    /// The credentials file to read and write instead of the usual ones.
    public var authFile: String?
    /// Credentials given on the command line (`--creds USER:PASSWORD`), before any file.
    public var credentials: Credentials?
    /// Attempts after the first, for 5xx answers and dropped connections.
    public var retries = 3
    /// The first retry's delay in seconds; each further one doubles it.
    public var retryDelay = 1.0
    /// Layers fetched (or uploaded) at once.
    public var parallel = 3
    /// The platform to choose from a manifest list (`os/arch[/variant]`, default this machine's).
    public var platform: String?
    /// Blobs larger than this are uploaded in chunks of this size.
    public var chunkSize = 16 << 20

    public init() {}
}
