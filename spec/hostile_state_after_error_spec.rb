# frozen_string_literal: true

# Hostile input: the unpacker's state after an exception.
#
# Decision documented here: after any error inside an object (MalformedFormatError for c1,
# StackError, a length-limit error, an exception from an ext proc or a key's #hash,
# EncodingError) the unpacker drops the object in progress and discards the rest of it as it
# arrives: the next read returns the next top-level object, never a part of the failed one;
# after an IO error (or EOF) it keeps the partial object and resumes; `reset` always gives a
# clean unpacker (docs/compatibility.md). spec/stream_after_error_spec.rb covers the same
# rule over many streams and chunkings. Helpers and the other topics: spec/support/hostile.rb.

RSpec.describe "Hostile input" do
  include HostileHelpers

  rs_only = HostileHelpers::RS_ONLY

  describe "unpacker state after an exception" do
    def read_all(u, n)
      Array.new(n) do
        u.read
      rescue MessagePack::UnpackError, EOFError, EncodingError, StandardError => e
        e.class
      end
    end

    it "c1 between objects: the following objects are still readable" do
      u = MessagePack::Unpacker.new
      u.feed(bin("01 c1 02 03"))
      expect(read_all(u, 4)).to eq([1, MessagePack::MalformedFormatError, 2, 3])
    end

    it "c1 between objects with feed_each: the next each continues after it" do
      u = MessagePack::Unpacker.new
      seen = []
      expect { u.feed_each(bin("01 c1 02 03")) { |o| seen << o } }.to raise_error(MessagePack::MalformedFormatError)
      u.each { |o| seen << o }
      expect(seen).to eq([1, 2, 3])
    end

    it "c1 inside a container: the rest of the container is discarded, reading goes on after it",
       skip: rs_only do
      # (The C gem instead keeps filling the container: [1, 2, 4].)
      u = MessagePack::Unpacker.new
      u.feed(bin("93 01 c1 02 04 05"))
      expect(read_all(u, 4)).to eq([MessagePack::MalformedFormatError, 4, 5, EOFError])
    end

    it "a length-limit error discards the rejected payload, also when it arrives later",
       skip: rs_only do
      u = MessagePack::Unpacker.new(max_str_len: 2)
      u.feed(bin("01 a3 61"))
      expect(read_all(u, 3)).to eq([1, MessagePack::MalformedFormatError, EOFError])
      u.feed(bin("62 63 02"))
      expect(read_all(u, 2)).to eq([2, EOFError])
    end

    it "StackError discards the rest of the too-deep object", skip: rs_only do
      u = MessagePack::Unpacker.new(max_depth: 2)
      u.feed(bin("01 91 91 91 05 06"))
      expect(read_all(u, 4)).to eq([1, MessagePack::StackError, 6, EOFError])
    end

    it "an exception from an ext unpacker proc propagates unchanged; the rest of the container is discarded",
       skip: rs_only do
      boom = Class.new(StandardError)
      u = MessagePack::Unpacker.new
      err = boom.new("boom")
      u.register_type(1) { |d| d == "x" ? raise(err) : d }
      u.feed(bin("93 01 d4 01 78 02 d4 01 79"))
      expect { u.read }.to raise_error { |e| expect(e).to equal(err) }
      expect(read_all(u, 2)).to eq(["y", EOFError])
    end

    it "throw from an ext unpacker proc leaves a usable unpacker" do
      u = MessagePack::Unpacker.new
      u.register_type(1) { |_| throw :out, :thrown }
      u.feed(bin("92 d4 01 41 05 06"))
      expect(catch(:out) { u.read }).to eq(:thrown)
      u.reset
      u.feed(bin("92 05 06"))
      expect(u.read).to eq([5, 6])
    end

    it "an exception from an ext object's #hash (as a map key) propagates; reading continues", skip: rs_only do
      key_class = Struct.new(:x) do
        def hash = raise(ArgumentError, "bad hash")
      end
      u = MessagePack::Unpacker.new
      u.register_type(1) { |d| key_class.new(d) }
      u.feed(bin("82 d4 01 41 01 02 03 07"))
      expect { u.read }.to raise_error(ArgumentError, "bad hash")
      expect(u.read).to eq(7)
    end

    it "EncodingError (symbolize_keys, invalid UTF-8 key) discards the rest of the map", skip: rs_only do
      u = MessagePack::Unpacker.new(symbolize_keys: true)
      u.feed(bin("81 a2 ff fe 01 92 01 02"))
      expect(read_all(u, 3)).to eq([EncodingError, [1, 2], EOFError])
    end

    it "an exception from the IO keeps the partial object: the next read resumes where it stopped" do
      chunks = [bin("93 01"), IOError.new("network down"), bin("02 03"), bin("04")]
      io = Object.new
      io.define_singleton_method(:readpartial) do |_n, buf = nil|
        c = chunks.shift
        raise EOFError if c.nil?
        raise c if c.is_a?(Exception)

        buf ? buf.replace(c) : c
      end
      u = MessagePack::Unpacker.new(io)
      expect { u.read }.to raise_error(IOError, "network down")
      expect(u.read).to eq([1, 2, 3])
      expect(u.read).to eq(4)
      expect { u.read }.to raise_error(EOFError)
    end

    it "an IO returning a non-String raises TypeError and the unpacker stays usable", skip: rs_only do
      calls = 0
      io = Object.new
      io.define_singleton_method(:readpartial) do |_n, buf = nil|
        calls += 1
        raise EOFError if calls > 2
        next 42 if calls == 1

        buf ? buf.replace("\x07") : "\x07"
      end
      u = MessagePack::Unpacker.new(io)
      expect { u.read }.to raise_error(TypeError)
      expect(u.read).to eq(7)
    end

    it "each over an IO: an error propagates, the next each continues" do
      chunks = [bin("01 02"), RuntimeError.new("x"), bin("03")]
      io = Object.new
      io.define_singleton_method(:readpartial) do |_n, buf = nil|
        c = chunks.shift
        raise EOFError if c.nil?
        raise c if c.is_a?(Exception)

        buf ? buf.replace(c) : c
      end
      u = MessagePack::Unpacker.new(io)
      seen = []
      expect { u.each { |o| seen << o } }.to raise_error(RuntimeError, "x")
      u.each { |o| seen << o }
      expect(seen).to eq([1, 2, 3])
    end

    it "reset makes the unpacker fully reusable after every kind of error" do
      boom = Class.new(StandardError)
      failing_io = Object.new
      failing_io.define_singleton_method(:readpartial) { |*| raise IOError, "gone" }
      scenarios = {
        "c1" => [{}, bin("92 01 c1 02")],
        "StackError" => [{}, nested(200, "91")],
        "limit" => [{ max_str_len: 1 }, bin("92 01 a2 6162")],
        "EOF mid-object" => [{}, bin("93 01 02")],
        "ext proc raised" => [{}, bin("92 01 d4 05 00 03")],
        "EncodingError" => [{ symbolize_keys: true }, bin("82 a2 fffe 01")],
        "unknown ext" => [{}, bin("92 01 d4 09 00")],
        "trailing bytes" => [{}, bin("01 02 03")],
      }
      scenarios.each do |name, (opts, data)|
        u = MessagePack::Unpacker.new(opts)
        u.register_type(5) { |_| raise boom }
        u.feed(data)
        begin
          name == "trailing bytes" ? u.full_unpack : u.read
        rescue MessagePack::UnpackError, EOFError, EncodingError, boom
          nil
        end
        u.reset
        expect(u.buffer.size).to eq(0), name
        u.feed(bin("92 91 01 81 a1 6b 02"))
        expect(u.read).to eq([[1], { (opts[:symbolize_keys] ? :k : "k") => 2 }]), name
        expect { u.read }.to raise_error(EOFError), name
      end

      u = MessagePack::Unpacker.new(failing_io)
      expect { u.read }.to raise_error(IOError)
      u.reset
      u.feed(bin("91 01"))
      expect(u.read).to eq([1])
    end

    it "Pool#load after a failed load works (members are reset)", :since_1_8 do
      pool = MessagePack::Factory.new.pool(1)
      expect { pool.load(bin("92 01 c1")) }.to raise_error(MessagePack::MalformedFormatError)
      expect { pool.load(bin("92 01")) }.to raise_error(EOFError)
      expect(pool.load(bin("92 01 02"))).to eq([1, 2])
    end

    it "MessagePack.unpack leaves the caller's String untouched when decoding fails" do
      data = +"\x92\x01\xc1" + ("x" * 300)
      data.force_encoding(Encoding::BINARY)
      before = data.dup
      expect { MessagePack.unpack(data) }.to raise_error(MessagePack::MalformedFormatError)
      expect(data).to eq(before)
      expect(data).not_to be_frozen
      data << "more" # still writable
    end
  end
end
