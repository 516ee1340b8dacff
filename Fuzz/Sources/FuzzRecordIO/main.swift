// libFuzzer harness: the InsightFace RecordIO reader on arbitrary bytes — `.idx` parsing,
// record framing (magic, length, continuation flags, padding), image headers, the identity
// ranges of record 0 and the packed image inside (`RecordIOReader`, `parseImageRecord`,
// `RecordIODataset.open`, `sample(at:)`, `makeBatch`).
//
// Input layout: `<.idx text> 0x00 <.rec bytes>`; an input that starts with the RecordIO magic
// number is a `.rec` alone, and its index is derived from a sequential scan (key k → the k-th
// record), so that mutations of the records reach the identity logic without a matching index.
// The reader works on files: each input is written to two files in a per-process scratch folder.
// Seeds: `Fuzz/write-recordio-seeds.py` → `Fuzz/corpus/recordio/`.
import ArcFace
import CLibFuzzer
import Foundation

let scratch = FileManager.default.temporaryDirectory.path + "/fuzz-recordio-\(getpid())"
let recordPath = scratch + "/fuzz.rec", indexPath = scratch + "/fuzz.idx"
try! FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
// libFuzzer ends the process with exit(): remove the scratch folder then (a crash leaves it).
atexit { try? FileManager.default.removeItem(atPath: scratch) }

/// The record offsets of a sequential scan, and checks on each record read.
func scan(_ reader: RecordIOReader) -> [Int] {
    var offsets: [Int] = []
    var records = reader.records()
    while let (offset, data) = records.next() {
        precondition(offsets.last.map { offset > $0 } ?? (offset == 0), "records must advance")
        precondition(data.count <= reader.fileSize, "a record cannot be larger than its file")
        offsets.append(offset)
        if let (header, image) = try? parseImageRecord(data, path: reader.path, offset: offset) {
            precondition(header.byteCount + image.count == data.count, "header and image must cover the record")
            precondition(header.labels.count == (header.flag > 0 ? Int(header.flag) : 0))
        }
    }
    return offsets
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecordIO(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = [UInt8](UnsafeRawBufferPointer(start: start, count: count))
    let magic: [UInt8] = [0x0A, 0x23, 0xD7, 0xCE]
    let recordBytes: ArraySlice<UInt8>
    var indexBytes: ArraySlice<UInt8>?
    if bytes.starts(with: magic) {
        recordBytes = bytes[...]
    } else {
        let split = bytes.firstIndex(of: 0) ?? bytes.count
        indexBytes = bytes[..<split]
        recordBytes = bytes[min(split + 1, bytes.count)...]
    }
    guard FileManager.default.createFile(atPath: recordPath, contents: Data(recordBytes)) else { fatalError("cannot write \(recordPath)") }
    guard let reader = try? RecordIOReader(path: recordPath) else { return 0 }
    let offsets = scan(reader)
    let index = indexBytes.map { Data($0) }
        ?? Data(offsets.enumerated().map { "\($0.offset)\t\($0.element)\n" }.joined().utf8)
    guard FileManager.default.createFile(atPath: indexPath, contents: index) else { fatalError("cannot write \(indexPath)") }

    guard let set = try? RecordIODataset.open(recordPath: recordPath, indexPath: indexPath) else { return 0 }
    precondition(set.count >= 1 && set.labels.count == set.count && set.imageKeys.count == set.count)
    precondition(set.labels.allSatisfy { $0 >= 0 && $0 < set.identityCount }, "labels must be in 0..<identityCount")
    for position in 0..<min(set.count, 4) {
        guard let (image, header) = try? set.sample(at: position) else { continue }
        precondition(image.channels == 1 || image.channels == 3)
        precondition(image.pixels.count == image.channels * image.width * image.height)
        precondition((header.labels.first ?? header.label) == Float(set.labels[position]))
    }
    let size = ImageSize(width: 2, height: 2)
    let indices = Array(0..<min(set.count, 2))
    if let batch = try? set.makeBatch(indices: indices, transforms: indices.map { _ in .identity }, imageSize: size,
                                      colorMode: .grayscale) {
        precondition(batch.images.shape == [indices.count, 1, 2, 2] && batch.labels == indices.map { set.labels[$0] })
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzRecordIO(data, size) })
