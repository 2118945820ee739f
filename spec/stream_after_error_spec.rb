# frozen_string_literal: true

# Unpacker stream state after an error raised inside an object (issue part 4).
#
# After any error inside an object the Unpacker drops the object in progress and discards
# the rest of it, also when the rest arrives in later chunks: the next read returns the
# next top-level object, never a part of the failed one. (It used to go on with the
# parent container's remaining elements, handing them out as top-level objects: the
# reported feed_each yielded 1, an element of the aborted array, after the ext proc
# raised.) `skip` shares the state: a skip cut short by EOFError is finished by the next
# skip or read, and skip applies the same depth and length limits as read.
#
# Every kind of error raised from a callback or by the decoder, at top level and nested
# in an Array or a Hash, is fed whole and byte by byte and read through read, each,
# feed_each and an Unpacker over an IO: each stream is "bef", the failing object, 42,
# [7, 8], and every reader must give exactly "bef", the error, 42, [7, 8].
# (spec/hostile_state_after_error_spec.rb, "unpacker state after an exception", has single
# cases of this.)

require "stringio"

module StreamAfterError
  class Custom < Exception; end # rubocop:disable Lint/InheritException -- not a StandardError on purpose

  class BadKey # an ext value used as a Hash key: its #hash raises
    def hash = raise(KeyError, "bad hash")
  end

  PLACEHOLDERS = Array.new(6) { Class.new }

  # Ext types 1-6: raise ArgumentError, raise Custom, throw, a recursive unpacker that
  # reads the first of the two objects in its payload and raises, a BadKey, a recursive
  # unpacker that raises before reading its payload.
  def self.factory
    f = MessagePack::Factory.new
    f.register_type(1, PLACEHOLDERS[0], unpacker: ->(_) { raise ArgumentError, "boom" })
    f.register_type(2, PLACEHOLDERS[1], unpacker: ->(_) { raise Custom, "custom" })
    f.register_type(3, PLACEHOLDERS[2], unpacker: ->(_) { throw :stream_after_error, :thrown })
    f.register_type(4, PLACEHOLDERS[3], unpacker: ->(u) { u.read && raise(ArgumentError, "after part") }, recursive: true)
    f.register_type(5, BadKey, unpacker: ->(_) { BadKey.new })
    f.register_type(6, PLACEHOLDERS[5], unpacker: ->(_) { raise ArgumentError, "before reading" }, recursive: true)
    f
  end

  FACTORY = factory

  BEFORE = "a3 62 65 66" # "bef"
  AFTER = "2a 92 07 08" # 42, [7, 8]
  EXPECTED_AFTER = [42, [7, 8]].freeze

  # name => [unpacker options, error (class name, or :thrown), { position => hex }]
  CASES = {
    "ext unpacker raising ArgumentError" => [{}, "ArgumentError", {
      "top level" => "d4 01 00",
      "in an Array" => "94 01 d4 01 00 02 92 03 04",
      "in a Hash" => "82 a1 61 d4 01 00 a1 62 02",
    }],
    "ext unpacker raising a custom Exception" => [{}, "StreamAfterError::Custom", {
      "top level" => "d4 02 00",
      "in an Array" => "94 01 92 d4 02 00 05 02 03",
      "in a Hash" => "82 a1 61 02 a1 62 d4 02 00",
    }],
    "ext unpacker throwing" => [{}, :thrown, {
      "top level" => "d4 03 00",
      "in an Array" => "93 01 d4 03 00 92 02 03",
      "in a Hash (as a key)" => "82 d4 03 00 01 a1 62 02",
    }],
    # The unread rest of the ext's payload is discarded by its declared length (it used
    # to come out as top-level objects, or count as the parent's remaining elements).
    "recursive ext unpacker raising after reading part of its payload" => [{}, "ArgumentError", {
      "top level" => "c7 05 04 01 a3 74 77 6f",
      "in an Array" => "93 01 c7 05 04 01 a3 74 77 6f 02",
      "in a Hash" => "82 a1 61 c7 05 04 01 a3 74 77 6f a1 62 02",
    }],
    "recursive ext unpacker raising before reading its payload" => [{}, "ArgumentError", {
      "top level" => "c7 05 06 01 a3 74 77 6f",
      "in an Array" => "93 01 c7 05 06 01 a3 74 77 6f 02",
    }],
    "map key whose #hash raises" => [{}, "KeyError", {
      "top level" => "82 d4 05 00 01 a1 62 02",
      "in an Array" => "93 01 82 d4 05 00 01 a1 62 02 03",
      "in a Hash" => "82 a1 61 81 d4 05 00 01 a1 62 02",
    }],
    "EncodingError (symbolize_keys, invalid UTF-8 key)" => [{ symbolize_keys: true }, "EncodingError", {
      "top level" => "82 a2 ff fe 01 a1 61 02",
      "in an Array" => "93 01 82 a2 ff fe 01 a1 61 02 03",
      "in a Hash" => "82 a1 61 82 a2 ff fe 01 a1 61 02 a1 62 03",
    }],
    "MalformedFormatError (c1)" => [{}, "MessagePack::MalformedFormatError", {
      "top level" => "c1",
      "in an Array" => "94 01 c1 02 92 03 04",
      "in a Hash" => "82 a1 61 c1 a1 62 02",
      "deep" => "92 92 01 92 c1 02 03",
    }],
    "StackError (max_depth: 2)" => [{ max_depth: 2 }, "MessagePack::StackError", {
      "top level" => "91 91 91 01",
      "in an Array" => "93 01 91 91 91 02 03",
      "in a Hash" => "82 a1 61 91 91 01 a1 62 02",
    }],
    "length limit (max_str_len: 4)" => [{ max_str_len: 4 }, "MessagePack::MalformedFormatError", {
      "top level" => "a9 61 62 63 64 65 66 67 68 69",
      "in an Array" => "93 01 a9 61 62 63 64 65 66 67 68 69 02",
      "in a Hash" => "82 a1 61 a9 61 62 63 64 65 66 67 68 69 a1 62 02",
    }],
    "length limit (max_array_len: 2, max_map_len: 1)" => [{ max_array_len: 2, max_map_len: 1 }, "MessagePack::MalformedFormatError", {
      "top level" => "93 01 02 03",
      "in an Array" => "92 01 93 01 02 03",
      "in a Hash" => "81 a1 61 82 a1 62 01 a1 63 02",
    }],
  }.freeze

  module_function

  def bin(hex) = [hex.delete(" ")].pack("H*").b

  # [:ok, value] | [:eof] | [:error, class name] | [:thrown]
  def attempt
    thrown = true
    value = catch(:stream_after_error) do
      v = yield
      thrown = false
      v
    end
    thrown ? [:thrown] : [:ok, value]
  rescue EOFError
    [:eof]
  rescue Exception => e # rubocop:disable Lint/RescueException -- Custom is not a StandardError
    [:error, e.class.name]
  end

  def record(events, result)
    events << (result[0] == :thrown ? :thrown : result[1])
  end

  # read until EOFError, recording values and errors
  def drain_read(u, events)
    40.times do
      r = attempt { u.read }
      return events if r[0] == :eof

      record(events, r)
    end
    events << :no_progress
  end

  # each until it returns, recording values and errors
  def drain_each(u, events)
    40.times do
      r = attempt { u.each { |o| events << o } }
      return events if r[0] == :ok

      record(events, r)
    end
    events << :no_progress
  end

  def feed_each(u, pieces, events)
    pieces.each do |pc|
      r = attempt { u.feed_each(pc) { |o| events << o } }
      next if r[0] == :ok

      record(events, r)
      drain_each(u, events) # the rest of this piece
    end
    events
  end

  class OneByteIO
    def initialize(data) = @data = data.dup
    def readpartial(_n, buf = nil)
      raise EOFError if @data.empty?

      b = @data.slice!(0, 1)
      buf ? buf.replace(b) : b
    end
  end

  # name => ->(make_unpacker(io = nil), data) { events }
  READERS = {
    "read, fed whole" => ->(mk, data) { drain_read(mk.call.feed(data), []) },
    "read, fed byte by byte" => lambda do |mk, data|
      u = mk.call
      data.each_char.with_object([]) { |b, ev| drain_read(u.feed(b), ev) }
    end,
    "each, fed whole" => ->(mk, data) { drain_each(mk.call.feed(data), []) },
    "each, fed byte by byte" => lambda do |mk, data|
      u = mk.call
      data.each_char.with_object([]) { |b, ev| drain_each(u.feed(b), ev) }
    end,
    "feed_each, whole" => ->(mk, data) { feed_each(mk.call, [data], []) },
    "feed_each, byte by byte" => ->(mk, data) { feed_each(mk.call, data.chars, []) },
    "feed_each, in two pieces split inside the failing object" => lambda do |mk, data|
      feed_each(mk.call, [data[0, 9], data[9..]], [])
    end,
    "each over a StringIO" => ->(mk, data) { drain_each(mk.call(StringIO.new(data)), []) },
    "read over an IO giving one byte per call" => ->(mk, data) { drain_read(mk.call(OneByteIO.new(data)), []) },
  }.freeze
end

RSpec.describe "Unpacker stream after an error inside an object", skip: (MSGPACK_SPEC_ORACLE ? "msgpack-rs behaviour (the C gem goes on with the failed container)" : false) do
  StreamAfterError::CASES.each do |kind, (opts, error, positions, *meta)|
    describe kind do
      positions.each do |position, hex|
        it "#{position}: every reader gives \"bef\", the error, then 42 and [7, 8]", *meta do
          data = StreamAfterError.bin("#{StreamAfterError::BEFORE} #{hex} #{StreamAfterError::AFTER}")
          make = ->(io = nil) { io ? StreamAfterError::FACTORY.unpacker(io, **opts) : StreamAfterError::FACTORY.unpacker(**opts) }
          expected = ["bef", error, *StreamAfterError::EXPECTED_AFTER]
          got = StreamAfterError::READERS.transform_values { |reader| reader.call(make, data) }
          wrong = got.reject { |_, events| events == expected }
          expect(wrong).to eq({}), wrong.map { |name, events| "#{name}: #{events.inspect}" }.join("\n")
        end
      end
    end
  end

  it "the reported reproduction: feed_each after an ext unpacker raised gives 42, then [7, 8]" do
    boom = Class.new
    f = MessagePack::Factory.new
    f.register_type(5, boom, packer: ->(_) { "p" }, unpacker: ->(_) { raise ArgumentError, "boom" })
    u = f.unpacker
    seen = []
    expect { u.feed_each(f.dump([boom.new, 1]) + f.dump(42)) { |o| seen << o } }.to raise_error(ArgumentError, "boom")
    u.feed_each(MessagePack.pack([7, 8])) { |o| seen << o }
    expect(seen).to eq([42, [7, 8]])
  end

  it "the rest of a failed object arriving much later (many chunks) is still discarded" do
    u = StreamAfterError::FACTORY.unpacker
    u.feed("\x93\xd4\x01\x00".b) # [ext 1 (raises), ...
    expect { u.read }.to raise_error(ArgumentError, "boom")
    body = MessagePack.pack([{ "k" => Array.new(300) { |i| i } }, "y" * 70_000])[1..] # the 2 elements left
    body.scan(/.{1,997}/mn).each do |piece|
      u.feed(piece)
      expect { u.read }.to raise_error(EOFError)
    end
    u.feed(MessagePack.pack("next"))
    expect(u.read).to eq("next")
  end

  describe "skip" do
    let(:rest) { MessagePack.pack(42) + MessagePack.pack([7, 8]) + MessagePack.pack("end") }

    it "a skip cut short by EOFError is finished by the next skip" do
      obj = MessagePack.pack([1, [2, 3], "x" * 300])
      u = MessagePack::Unpacker.new
      u.feed(obj[0, 10])
      expect { u.skip }.to raise_error(EOFError)
      u.feed(obj[10, 100])
      expect { u.skip }.to raise_error(EOFError)
      u.feed(obj[110..] + rest)
      expect(u.skip).to be_nil
      expect([u.read, u.read, u.read]).to eq([42, [7, 8], "end"])
    end

    it "a skip cut short by EOFError is finished by the next read, which returns the next object" do
      obj = MessagePack.pack([1, [2, 3], "x" * 300])
      u = MessagePack::Unpacker.new
      u.feed(obj[0, 10])
      expect { u.skip }.to raise_error(EOFError)
      u.feed(obj[10..] + rest)
      expect([u.read, u.read, u.read]).to eq([42, [7, 8], "end"]) # never the rest of the skipped Array
    end

    {
      "max_depth" => [{ max_depth: 2 }, MessagePack.pack([[[[1]]]]), MessagePack::StackError],
      "max_str_len" => [{ max_str_len: 4 }, MessagePack.pack(["abcdefgh", 1]), MessagePack::MalformedFormatError],
      "max_bin_len" => [{ max_bin_len: 4 }, MessagePack.pack([1, "abcdefgh".b]), MessagePack::MalformedFormatError],
      "max_array_len" => [{ max_array_len: 2 }, MessagePack.pack([[1, 2, 3]]), MessagePack::MalformedFormatError],
      "max_map_len" => [{ max_map_len: 1 }, MessagePack.pack([{ "a" => 1, "b" => 2 }]), MessagePack::MalformedFormatError],
    }.each do |limit, (opts, bad, error)|
      it "applies #{limit} as read does; the next read and the next skip go on after the failed object" do
        u = MessagePack::Unpacker.new(opts)
        u.feed(bad + rest)
        expect { u.skip }.to raise_error(error)
        expect(u.read).to eq(42)
        u = MessagePack::Unpacker.new(opts)
        u.feed(bad + rest)
        expect { u.skip }.to raise_error(error)
        expect(u.skip).to be_nil # skips 42
        expect(u.read).to eq([7, 8])
        expect(u.read).to eq("end")
      end
    end

    it "a skip over the rest of a failed read goes on with the next object" do
      u = MessagePack::Unpacker.new
      u.feed("\x93\x01\xc1\x02".b + rest)
      expect { u.read }.to raise_error(MessagePack::MalformedFormatError)
      expect(u.skip).to be_nil # 42
      expect(u.read).to eq([7, 8])
    end

    # A skip that raised on a c1 byte inside a container leaves the rest of that
    # container to be dropped, like any other error: the next skip is the next object's.
    it "after a skip failed on c1, the next skip skips the next object" do
      %w[c1 93-01-c1-02 92-92-01-c1-02].each do |hex|
        u = MessagePack::Unpacker.new
        u.feed(bin(hex) + rest)
        expect { u.skip }.to raise_error(MessagePack::MalformedFormatError)
        expect(u.skip).to be_nil # should skip 42
        expect(u.read).to eq([7, 8]), "after #{hex}"
      end
    end
  end
end
