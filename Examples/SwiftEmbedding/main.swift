// Embedding UnionFS from Swift: mount two layers with an upper in this process, change a file
// through the mount, read the merged view without a mount, and unmount.
// Run as root: swift run unionfs-embed-example
import Glibc
import UnionFS

func make(_ path: String) { mkdir(path, 0o755) }
func write(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
    close(fd)
}

var template = Array("/tmp/unionfs-embed.XXXXXX".utf8CString)
let root = String(cString: mkdtemp(&template)!)
for d in ["base", "app", "upper", "work", "merged"] { make("\(root)/\(d)") }
write("\(root)/base/hello.txt", "hello from base\n")
write("\(root)/app/app.conf", "mode=app\n")

let layers = LayerStackConfiguration(lowerdirs: ["\(root)/app", "\(root)/base"],
                                     upperdir: "\(root)/upper", workdir: "\(root)/work")
do {
    let mount = try UnionMount(layers, at: "\(root)/merged")
    write("\(root)/merged/hello.txt", "changed through the mount\n")  // copy-up
    unlink("\(root)/merged/app.conf")                                   // whiteout
    mount.unmount()

    let view = try UnionView(layers)                                    // no mount needed
    let names = try view.list("/").map(\.name.description).sorted()
    let hello = String(decoding: try view.readAll("/hello.txt"), as: UTF8.self)
    print("merged entries: \(names)")
    print("hello.txt: \(hello)", terminator: "")
    guard names == ["hello.txt"], hello == "changed through the mount\n" else {
        print("unexpected merged view"); exit(1)
    }
    print("ok")
} catch {
    print("error: \(error)")
    exit(1)
}
