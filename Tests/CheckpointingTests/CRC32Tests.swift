import Testing
import Checkpointing

@Suite struct CRC32Tests {
    @Test("CRC-32 of the standard check string")
    func crc() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum(Array("6789".utf8), continuing: CRC32.checksum(Array("12345".utf8))) == 0xCBF4_3926)
    }
}
