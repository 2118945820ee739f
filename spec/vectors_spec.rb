# frozen_string_literal: true

require "json"

# Cross-language vectors from kawanet/msgpack-test-suite (MIT), vendored in
# spec/fixtures/msgpack-test-suite/ (see the README.md there). Every listed encoding must
# decode to the value; packing the value must give the first (shortest) encoding.
#
# Value mapping: nil/bool/number/string/array/map are the JSON values (str -> UTF-8 String);
# "binary" -> ASCII-8BIT String; "bignum" -> Integer (the approximate "number" is ignored);
# "timestamp" -> MessagePack::Timestamp via a Factory with Timestamp registered as -1;
# "ext" -> MessagePack::ExtensionValue (allow_unknown_ext).
#
# Encode-check exceptions (the C gem chooses a different, equally short encoding):
# a non-negative Integer whose first listed encoding is a *signed* form (only
# 9223372036854775807: "d3 7f ff .." listed first) is packed with the unsigned form
# ("cf 7f ff .."), which the suite also lists, because the C gem always writes positive
# values with the unsigned formats (docs/compatibility.md §7). The check then expects that
# listed unsigned encoding instead. No value is skipped: every group gets an encode check.
#
# A missing fixture fails (the first example below, and the count check at the end); the
# per-group examples are then not generated.

VECTORS_PATH = Fixtures::MSGPACK_TEST_SUITE_JSON
VECTORS_TOTAL_ENCODINGS = 233
VECTORS_TOTAL_GROUPS = 85

RSpec.describe "msgpack-test-suite vectors" do
  it "reads the vendored suite and its license from spec/fixtures/msgpack-test-suite/" do
    expect(File.file?(VECTORS_PATH)).to be(true), "test vectors missing: #{VECTORS_PATH}"
    license = File.join(File.dirname(VECTORS_PATH), "LICENSE-msgpack-test-suite")
    expect(File.file?(license)).to be(true), "license of the test vectors missing: #{license}"
  end

  suite = File.file?(VECTORS_PATH) ? JSON.parse(File.read(VECTORS_PATH)) : {}

  def self.hex_bytes(dashed)
    [dashed.delete("-")].pack("H*").b
  end

  def self.expected_value(group)
    if group.key?("bignum") then Integer(group["bignum"])
    elsif group.key?("binary") then hex_bytes(group["binary"])
    elsif group.key?("timestamp") then MessagePack::Timestamp.new(*group["timestamp"])
    elsif group.key?("ext") then MessagePack::ExtensionValue.new(group["ext"][0], hex_bytes(group["ext"][1]))
    else
      key = (group.keys - ["msgpack"]).first
      group[key]
    end
  end

  # What a decoded encoding must equal under StrictEquality.same? (classes, String
  # encodings and bytes, Float bits, map order; no frozen check): a JSON number decodes to a
  # Float from CA/CB and to an Integer otherwise; the rest is the mapped value itself.
  def decoded_expectation(value, lead)
    if value.is_a?(Numeric)
      [0xca, 0xcb].include?(lead) ? value.to_f : Integer(value)
    else
      value
    end
  end

  def self.expected_first_encoding(value, encodings)
    first = encodings.first
    lead = hex_bytes(first).getbyte(0)
    if value.is_a?(Integer) && value >= 0 && (0xd0..0xd3).cover?(lead)
      unsigned = encodings.find do |e|
        b = hex_bytes(e)
        (0xcc..0xcf).cover?(b.getbyte(0)) && b.bytesize == hex_bytes(first).bytesize
      end
      return unsigned if unsigned
    end
    first
  end

  let(:factory) do
    MessagePack::Factory.new.tap { |f| f.register_type(MessagePack::Timestamp::TYPE, MessagePack::Timestamp) }
  end

  def decode(bytes)
    factory.load(bytes, allow_unknown_ext: true)
  end

  def encode(value, first_encoding)
    if value.is_a?(Float) && self.class.hex_bytes(first_encoding).getbyte(0) == 0xca
      MessagePack::Packer.new.write_float32(value).to_s
    else
      factory.dump(value)
    end
  end

  suite.each do |file, groups|
    describe file do
      groups.each_with_index do |group, i|
        value = expected_value(group)
        encodings = group["msgpack"]
        first = expected_first_encoding(value, encodings)

        it "group #{i}: decodes all #{encodings.size} encodings of #{value.inspect[0, 60]}" do
          encodings.each do |enc|
            bytes = self.class.hex_bytes(enc)
            out = decode(bytes)
            expect(out).to strictly_equal(decoded_expectation(value, bytes.getbyte(0)), frozen: false), "decoding #{enc}"
          end
        end

        it "group #{i}: packs #{value.inspect[0, 60]} as #{first[0, 40]}" do
          expect(encode(value, first)).to eq(self.class.hex_bytes(first))
        end
      end
    end
  end

  it "checks #{VECTORS_TOTAL_ENCODINGS} encodings in #{VECTORS_TOTAL_GROUPS} groups" do
    decoded = 0
    encoded = 0
    suite.each_value do |groups|
      groups.each do |group|
        value = self.class.expected_value(group)
        group["msgpack"].each do |enc|
          bytes = self.class.hex_bytes(enc)
          decoded += 1 if StrictEquality.same?(decode(bytes), decoded_expectation(value, bytes.getbyte(0)), frozen: false)
        end
        first = self.class.expected_first_encoding(value, group["msgpack"])
        encoded += 1 if encode(value, first) == self.class.hex_bytes(first)
      end
    end
    expect(decoded).to eq(VECTORS_TOTAL_ENCODINGS)
    expect(encoded).to eq(VECTORS_TOTAL_GROUPS)
  end
end
