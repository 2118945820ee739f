# frozen_string_literal: true

# Random and mutated input through every decoding entry point: the shared code of
# spec/random_input_spec.rb (a bounded pass, in a child) and script/fuzz (the driver for
# long runs and replays). Plain Ruby, no RSpec; needs msgpack loaded first.
#
# Each case is a byte string: a valid message (encoded here with randomly chosen, often
# non-minimal formats), a mutation of one (bit flips, interesting bytes, truncation,
# insertion, deletion, length-header bumps, splices), or random bytes. It goes through
#   * MessagePack.unpack / Factory#load (the String fast path), and
#   * an Unpacker fed in random chunks or byte by byte: feed_each, or a random mix of
#     read / skip / skip_nil / read_array_header / read_map_header / each,
# with random options (symbolize_keys, freeze, key_cache, allow_unknown_ext, limits), on the
# default factory or on one with ext types (Time, plain procs, a recursive type, a proc that
# raises). Every outcome must be a value or one of the documented exceptions:
#   MessagePack::UnpackError (and subclasses), EOFError, EncodingError (symbolize_keys),
#   plus RandomInputFuzz::ExtBoom, which the raising ext proc raises.
# Anything else (TypeError, NoMethodError, RangeError, a crash, a hang) is a failure.
# After each case the Unpacker is reset and must decode a probe message again.
#
# For the default factory the fast path and the streaming Unpacker are compared:
# a value from MessagePack.unpack must come out of the chunked stream as the only object
# (StrictEquality.same?: same classes, encodings, frozen state, Float bits); EOFError means
# the stream yields nothing; another error means the stream raises the same class first.
# Unmutated messages must decode to the model they were encoded from
# (StrictEquality.same?(..., frozen: false)), and their prefixes to EOFError.
#
# The models come from RandomObjects' :wire profile (spec/support/random_objects.rb).
# RandomInputFuzz::Runner (random_input_fuzz/runner.rb) runs a pass.
require "json"
require_relative "random_objects"
require_relative "strict_equality"

module RandomInputFuzz
  class ExtBoom < StandardError; end

  # What non-recursive registered ext procs return.
  Tagged = Struct.new(:type, :payload)
  # What the recursive ext type (2) returns: the next object, boxed.
  Box = Struct.new(:value)

  ALLOWED = [MessagePack::UnpackError, EOFError, EncodingError].freeze
  ALLOWED_WITH_EXT = (ALLOWED + [ExtBoom]).freeze

  DEFAULT_SEED = 0x5EED_F00D

  # Decoded after every reset: two integers, which no option or limit affects. If a
  # partial container survived the reset they would land in it instead.
  PROBE = "\x2a\xcd\x12\x34".b.freeze
  PROBE_VALUES = [42, 0x1234].freeze

  INTERESTING_BYTES = [
    0x00, 0x01, 0x7f, 0x80, 0x81, 0x8f, 0x90, 0x91, 0x9f, 0xa0, 0xa1, 0xbf, 0xc0, 0xc1,
    0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd,
    0xde, 0xdf, 0xe0, 0xff
  ].freeze

  INTERESTING_LENGTHS = [
    0, 1, 2, 15, 16, 31, 32, 255, 256, 0x7fff, 0x8000, 0xffff, 0x10000,
    0x7fff_ffff, 0x8000_0000, 0x8000_0001, 0xffff_fffe, 0xffff_ffff
  ].freeze

  # ---------------------------------------------------------------- encoder

  # Encodes a model value with randomly chosen valid formats (not only the minimal one)
  # and records where length headers are, for header-bump mutations.
  class LooseEncoder
    # [offset, width] of every length field (width 0: the count is in the lead byte).
    attr_reader :headers, :out

    def initialize(rng)
      @rng = rng
      @out = String.new(encoding: Encoding::BINARY)
      @headers = []
    end

    def encode(obj)
      case obj
      when nil then byte(0xc0)
      when true then byte(0xc3)
      when false then byte(0xc2)
      when Integer then int(obj)
      when Float then float(obj)
      when String then obj.encoding == Encoding::BINARY ? bin(obj) : str(obj)
      when Array
        container_header(obj.size, 0x90, 0xdc, 0xdd)
        obj.each { |o| encode(o) }
      when Hash
        container_header(obj.size, 0x80, 0xde, 0xdf)
        obj.each do |k, v|
          encode(k)
          encode(v)
        end
      when MessagePack::ExtensionValue then ext(obj.type, obj.payload)
      else raise ArgumentError, "no model encoding for #{obj.class}"
      end
      self
    end

    private

    def byte(b) = @out << b.chr

    def raw(fmt, *vals) = @out << vals.pack(fmt)

    def pick(choices) = choices[@rng.rand(choices.size)]

    def int(n)
      forms = []
      forms << [:fix] if n.between?(-32, 127)
      if n >= 0
        forms << [0xcc, "C"] if n < 2**8
        forms << [0xcd, "n"] if n < 2**16
        forms << [0xce, "N"] if n < 2**32
        forms << [0xcf, "Q>"] if n < 2**64
      end
      forms << [0xd0, "c"] if n.between?(-2**7, 2**7 - 1)
      forms << [0xd1, "s>"] if n.between?(-2**15, 2**15 - 1)
      forms << [0xd2, "l>"] if n.between?(-2**31, 2**31 - 1)
      forms << [0xd3, "q>"] if n.between?(-2**63, 2**63 - 1)
      lead, fmt = pick(forms)
      if lead == :fix
        raw("c", n)
      else
        byte(lead)
        raw(fmt, n)
      end
    end

    def float(f)
      exact32 = f.nan? || [f].pack("g").unpack1("g") == f
      if exact32 && @rng.rand < 0.5
        byte(0xca)
        raw("g", f)
      else
        byte(0xcb)
        raw("G", f)
      end
    end

    # A length field: fixed in the lead byte when allowed, else 8/16/32 bits.
    def length_header(len, fix_base, fix_max, l8, l16, l32)
      forms = []
      forms << :fix if fix_base && len <= fix_max
      forms << :l8 if l8 && len < 2**8
      forms << :l16 if len < 2**16
      forms << :l32
      case pick(forms)
      when :fix
        @headers << [@out.bytesize, 0]
        byte(fix_base | len)
      when :l8
        byte(l8)
        @headers << [@out.bytesize, 1]
        raw("C", len)
      when :l16
        byte(l16)
        @headers << [@out.bytesize, 2]
        raw("n", len)
      when :l32
        byte(l32)
        @headers << [@out.bytesize, 4]
        raw("N", len)
      end
    end

    def container_header(len, fix, l16, l32) = length_header(len, fix, 15, nil, l16, l32)

    def str(s)
      length_header(s.bytesize, 0xa0, 31, 0xd9, 0xda, 0xdb)
      @out << s.b
    end

    def bin(s)
      length_header(s.bytesize, nil, 0, 0xc4, 0xc5, 0xc6)
      @out << s
    end

    def ext(type, payload)
      len = payload.bytesize
      fixed = { 1 => 0xd4, 2 => 0xd5, 4 => 0xd6, 8 => 0xd7, 16 => 0xd8 }[len]
      forms = [:l32]
      forms << :l16 if len < 2**16
      forms << :l8 if len < 2**8
      forms << :fixed if fixed
      case pick(forms)
      when :fixed then byte(fixed)
      when :l8 then ext_length(0xc7, "C", 1, len)
      when :l16 then ext_length(0xc8, "n", 2, len)
      else ext_length(0xc9, "N", 4, len)
      end
      raw("c", type)
      @out << payload
    end

    def ext_length(lead, fmt, width, len)
      byte(lead)
      @headers << [@out.bytesize, width]
      raw(fmt, len)
    end
  end

  # ---------------------------------------------------------------- mutations

  def self.mutate(rng, data, headers)
    data = data.dup
    rounds = 1 + rng.rand(3)
    rounds.times do
      case rng.rand(10)
      when 0 # bit flips
        next if data.empty?

        (1 + rng.rand(3)).times do
          i = rng.rand(data.bytesize)
          data.setbyte(i, data.getbyte(i) ^ (1 << rng.rand(8)))
        end
      when 1 # an interesting byte
        next if data.empty?

        data.setbyte(rng.rand(data.bytesize), INTERESTING_BYTES[rng.rand(INTERESTING_BYTES.size)])
      when 2 # truncation
        data = data.byteslice(0, rng.rand(data.bytesize + 1))
      when 3 # insertion
        ins = Array.new(1 + rng.rand(6)) do
          rng.rand < 0.5 ? INTERESTING_BYTES[rng.rand(INTERESTING_BYTES.size)] : rng.rand(256)
        end.pack("C*")
        at = rng.rand(data.bytesize + 1)
        data = data.byteslice(0, at) + ins + data.byteslice(at..)
      when 4 # deletion
        next if data.empty?

        at = rng.rand(data.bytesize)
        data = data.byteslice(0, at) + data.byteslice((at + 1 + rng.rand(4))..).to_s
      when 5, 6 # header bump
        next if headers.empty?

        off, width = headers[rng.rand(headers.size)]
        next if off >= data.bytesize

        bump_header(rng, data, off, width)
      when 7 # duplicate a slice
        next if data.empty?

        at = rng.rand(data.bytesize)
        len = 1 + rng.rand([data.bytesize - at, 16].min)
        piece = data.byteslice(at, len)
        ins = rng.rand(data.bytesize + 1)
        data = data.byteslice(0, ins) + piece + data.byteslice(ins..)
      when 8 # swap a lead byte for another family
        next if headers.empty?

        off, width = headers[rng.rand(headers.size)]
        lead = width.zero? ? off : off - 1
        next if lead.negative? || lead >= data.bytesize

        data.setbyte(lead, INTERESTING_BYTES[rng.rand(INTERESTING_BYTES.size)])
      else # splice with a nested-header run
        run = [[0x91, 0x81, 0xdc, 0xdd, 0xde, 0xdf][rng.rand(6)]].pack("C")
        run += "\xff\xff".b if run.getbyte(0) >= 0xdc
        run += "\xff\xff".b if run.getbyte(0) == 0xdd || run.getbyte(0) == 0xdf
        at = rng.rand(data.bytesize + 1)
        data = data.byteslice(0, at) + run * (1 + rng.rand(200)) + data.byteslice(at..)
      end
    end
    data
  end

  def self.bump_header(rng, data, off, width)
    if width.zero?
      lead = data.getbyte(off)
      base, bits = case lead
                   when 0x80..0x8f then [0x80, 0x0f]
                   when 0x90..0x9f then [0x90, 0x0f]
                   when 0xa0..0xbf then [0xa0, 0x1f]
                   else return
                   end
      data.setbyte(off, base | rng.rand(bits + 1))
      return
    end
    return if off + width > data.bytesize

    len = INTERESTING_LENGTHS[rng.rand(INTERESTING_LENGTHS.size)]
    len = rng.rand(2**32) if rng.rand < 0.2
    field = case width
            when 1 then [len & 0xff].pack("C")
            when 2 then [len & 0xffff].pack("n")
            else [len & 0xffff_ffff].pack("N")
            end
    data[off, width] = field
  end

  def self.random_bytes(rng)
    len = rng.rand(rng.rand < 0.2 ? 200 : 24)
    Array.new(len) do
      rng.rand < 0.5 ? INTERESTING_BYTES[rng.rand(INTERESTING_BYTES.size)] : rng.rand(256)
    end.pack("C*")
  end
end

require_relative "random_input_fuzz/runner"
