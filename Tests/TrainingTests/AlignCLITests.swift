import Foundation
import Testing
import _TestSupport
import ArcFace

/// `arcface align`: crops written under the output folder mirroring the image paths; a bad
/// landmark line exits 1 naming file:line; bad option values are usage errors (exit 64).
@Suite struct AlignCLITests {
    /// A landmark line for `path`: the template moved into a 92 × 112 AT&T face.
    static func line(_ path: String) -> String {
        let placement = SimilarityTransform(scale: 0.7, rotation: 0.1, translation: SIMD2(12, 10))
        return path + " " + ArcFaceTemplate.points112.map { placement($0) }.map { "\($0.x) \($0.y)" }.joined(separator: " ")
    }

    @Test("align two AT&T faces; a bad line exits 1 naming it; --size 100 and --quality 0 exit 64",
          .enabled(if: ArcFaceBinary.path != nil))
    func align() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let marks = directory.path + "/marks.txt"
        try (Self.line("s1/1.pgm") + "\n" + Self.line("s2/3.pgm") + "\n").write(toFile: marks, atomically: true, encoding: .utf8)
        let output = directory.path + "/aligned"
        let base = ["align", "--landmarks", marks, "--images", attFacesDirectory, "--output", output]
        let result = try RunFolderCLITests.run(binary, base)
        #expect(result.status == 0, "\(result.text)")
        #expect(result.text.contains("wrote 2 112×112 crops to \(output)"), "\(result.text)")
        let crop = try loadImage(path: output + "/s2/3.png")
        #expect((crop.width, crop.height, crop.channels) == (112, 112, 1))
        #expect(FileManager.default.fileExists(atPath: output + "/s1/1.png"))

        let large = try RunFolderCLITests.run(binary, base + ["--size", "224", "--format", "jpeg", "--output", output + "224"])
        #expect(large.status == 0, "\(large.text)")
        let jpeg = try loadImage(path: output + "224/s1/1.jpg")
        #expect((jpeg.width, jpeg.height) == (224, 224))

        let bad = directory.path + "/bad.txt"
        try (Self.line("s1/1.pgm") + "\ns1/2.pgm 1 2 3\n").write(toFile: bad, atomically: true, encoding: .utf8)
        let failed = try RunFolderCLITests.run(binary, ["align", "--landmarks", bad, "--images", attFacesDirectory,
                                                         "--output", directory.path + "/never"])
        #expect(failed.status == 1, "\(failed.text)")
        #expect(failed.text.contains("\(bad):2: 4 fields, expected 11 fields"), "\(failed.text)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/never"))

        for (options, named) in [(["--size", "100"], "--size must be a positive multiple of 112 or 128"),
                                 (["--size", "1120000"], "at most 4096"),
                                 (["--quality", "0"], "--quality must be in 1…100"),
                                 (["--format", "gif"], "--format")] {
            let usage = try RunFolderCLITests.run(binary, base + options)
            #expect(usage.status == 64, "\(options): \(usage.text)")
            #expect(usage.text.contains(named), "\(options): \(usage.text)")
        }
    }
}
