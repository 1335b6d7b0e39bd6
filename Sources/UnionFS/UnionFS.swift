// The module embedders import (`import UnionFS`): the core, the FUSE mount and the layer tars,
// re-exported as one. The layering between them is in docs/ARCHITECTURE.md.
@_exported import UnionFSCore
@_exported import UnionFSFuse
@_exported import UnionFSOCI
// The API's one error currency, `Errno`, which typed-throws closures (`FileName.validating`)
// must name.
@_exported import struct SystemPackage.Errno
