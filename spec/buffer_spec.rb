# frozen_string_literal: true

require "objspace"

# MessagePack::Buffer. docs/compatibility.md §5.

RSpec.describe MessagePack::Buffer do
  let(:buffer) { MessagePack::Buffer.new }

  describe ".new" do
    it "accepts (), (nil), (hash), (io), (io, hash), (nil, hash)" do
      io = StringIO.new
      [[], [nil], [{}], [{ io_buffer_size: 4096 }], [io], [io, {}], [nil, {}]].each do |args|
        expect(MessagePack::Buffer.new(*args)).to be_a(MessagePack::Buffer)
      end
    end

    it "raises ArgumentError naming the first argument's class for a non-Hash second argument", :c_quirk do
      expect { MessagePack::Buffer.new(StringIO.new, 1) }
        .to raise_error(ArgumentError, "expected Hash but found StringIO.")
    end

    it "raises ArgumentError '(3 for 0..1)' for three arguments", :c_quirk do
      expect { MessagePack::Buffer.new(nil, {}, 1) }
        .to raise_error(ArgumentError, "wrong number of arguments (3 for 0..1)")
    end

    it "accepts the three size options, including tiny and huge values" do
      [{ io_buffer_size: 1 }, { read_reference_threshold: 0 }, { write_reference_threshold: 1 },
       { io_buffer_size: 2**40, read_reference_threshold: 2**40, write_reference_threshold: 2**40 }].each do |opts|
        b = MessagePack::Buffer.new(opts)
        b << "x" * 2000
        expect(b.read).to eq("x" * 2000)
      end
    end
  end

  describe "method set" do
    it "has exactly the documented public methods, plus msgpack-rs's compact!" do
      # compact! (release slack memory) is msgpack-rs's addition; the rest is
      # the C gem's exact method set.
      expect(MessagePack::Buffer.public_instance_methods(false).sort)
        .to eq(%i[<< clear close compact! empty? flush io read read_all size skip skip_all to_a to_s to_str write write_to])
    end

    it "has no #append" do
      expect(buffer).not_to respond_to(:append)
    end

    it "does not support dup or clone", :since_1_6 do
      expect { buffer.dup }.to raise_error(NoMethodError)
      expect { buffer.clone }.to raise_error(NoMethodError)
    end
  end

  describe "writing" do
    it "returns the byte count from write and self from <<" do
      expect(buffer.write("abc")).to eq(3)
      expect(buffer.write("é")).to eq(2)
      expect(buffer << "d").to equal(buffer)
      expect(buffer.to_s).to eq("abcéd".b)
    end

    it "accepts objects with to_str and rejects others with TypeError" do
      s = Object.new
      def s.to_str = "q"
      expect(buffer.write(s)).to eq(1)
      expect { buffer.write(1) }.to raise_error(TypeError)
      expect { buffer << nil }.to raise_error(TypeError)
      expect(buffer.to_s).to eq("q")
    end

    it "tracks size and empty?" do
      expect(buffer.size).to eq(0)
      expect(buffer.empty?).to be(true)
      10.times { |i| buffer << "short"; expect(buffer.size).to eq(5 * (i + 1)) }
      expect(buffer.empty?).to be(false)
    end

    it "copies written data: later changes to the source do not leak in" do
      small = +"abc"
      big = "a" * (1024 * 1024 + 2)
      buffer << small << big
      small << "x"
      big[0] = "b"
      expect(buffer.read).to eq("abc" + "a" * (1024 * 1024 + 2))
    end
  end

  describe "#read" do
    it "reads everything with no argument and returns '' when empty" do
      buffer << "ab" << "cd"
      expect(buffer.read).to eq("abcd")
      expect(buffer.read).to eq("")
      expect(buffer.size).to eq(0)
    end

    it "reads at most n bytes and returns nil at EOF" do
      buffer << "ch"
      expect(buffer.read(1)).to eq("c")
      expect(buffer.size).to eq(1)
      expect(buffer.read(5)).to eq("h")
      expect(buffer.read(1)).to be_nil
    end

    it "returns '' for read(0), even when empty" do
      expect(buffer.read(0)).to eq("")
      buffer << "a"
      expect(buffer.read(0)).to eq("")
      expect(buffer.size).to eq(1)
    end

    it "replaces and returns the outbuf in read(n, outbuf)" do
      buffer << "abc"
      out = +"zzzz"
      expect(buffer.read(2, out)).to equal(out)
      expect(out).to eq("ab")
    end

    it "raises TypeError 'instance of String needed' for a non-String outbuf" do
      buffer << "abc"
      expect { buffer.read(1, 5) }.to raise_error(TypeError, "instance of String needed")
    end

    it "treats a negative n as huge (FIX2ULONG quirk)", :c_quirk do
      buffer << "abcdef"
      expect(buffer.read(-1)).to eq("abcdef")
    end

    it "returns binary strings" do
      buffer << "é"
      expect(buffer.read.encoding).to eq(Encoding::BINARY)
    end
  end

  describe "#read_all" do
    it "reads everything with no argument" do
      buffer << "xyz"
      expect(buffer.read_all).to eq("xyz")
      expect(buffer.read_all).to eq("")
    end

    it "reads exactly n bytes" do
      buffer << "ch"
      expect(buffer.read_all(1)).to eq("c")
      expect(buffer.read_all(1)).to eq("h")
    end

    it "raises EOFError 'end of buffer reached' and consumes nothing when short" do
      expect { buffer.read_all(1) }.to raise_error(EOFError, "end of buffer reached")
      buffer << "c"
      expect { buffer.read_all(2) }.to raise_error(EOFError)
      expect(buffer.size).to eq(1)
      expect(buffer.read_all(1)).to eq("c")
    end

    it "returns '' for read_all(0) and fills an outbuf" do
      expect(buffer.read_all(0)).to eq("")
      buffer << "abc"
      out = +""
      expect(buffer.read_all(3, out)).to equal(out)
      expect(out).to eq("abc")
    end
  end

  describe "#skip / #skip_all" do
    it "skip returns the number of bytes skipped" do
      buffer << "abcd"
      expect(buffer.skip(1)).to eq(1)
      expect(buffer.skip(0)).to eq(0)
      expect(buffer.skip(10)).to eq(3)
      expect(buffer.skip(1)).to eq(0)
    end

    it "skip_all returns self or raises EOFError consuming nothing" do
      buffer << "abcd"
      expect(buffer.skip_all(1)).to equal(buffer)
      expect(buffer.skip_all(0)).to equal(buffer)
      expect { buffer.skip_all(4) }.to raise_error(EOFError)
      expect(buffer.size).to eq(3)
      expect(buffer.read).to eq("bcd")
    end
  end

  describe "#to_s / #to_str / #to_a" do
    it "returns a binary copy without consuming" do
      buffer << "short"
      s = buffer.to_s
      expect(s).to eq("short")
      expect(s.encoding).to eq(Encoding::BINARY)
      s << "x"
      expect(buffer.to_str).to eq("short")
      expect(buffer.size).to eq(5)
    end

    it "returns the chunks from to_a ([''] when empty)" do
      expect(buffer.to_a).to eq([""])
      buffer << "a" * 10
      buffer << "b" * (1024 * 1024)
      expect(buffer.to_a.join).to eq("a" * 10 + "b" * (1024 * 1024))
      expect(buffer.to_a).to all(be_a(String))
      expect(buffer.size).to eq(10 + 1024 * 1024)
    end
  end

  describe "#clear" do
    it "returns nil and drops everything" do
      buffer << "abc"
      expect(buffer.clear).to be_nil
      expect(buffer.size).to eq(0)
      expect(buffer.read).to eq("")
    end

    it "never shows old data after reuse (1.8.2 arena reset)" do
      rng = Random.new(1234)
      50.times do
        old = rng.bytes(rng.rand(1..10_000))
        buffer << old
        buffer.read(rng.rand(0..old.bytesize))
        buffer.clear
        fresh = rng.bytes(rng.rand(1..5000))
        buffer << fresh
        expect(buffer.to_s).to eq(fresh)
        expect(buffer.read).to eq(fresh)
      end
    end
  end

  describe "large and random data" do
    it "keeps data across many appends and partial reads" do
      big = "a" * (1024 * 1024 + 2)
      buffer << big << ("b" * (1024 * 1024 + 2)) << "c"
      expect(buffer.read_all(1)).to eq("a")
      expect(buffer.read_all(big.size - 1)).to eq(big[1..])
      expect(buffer.read(1024 * 1024 + 2)).to eq("b" * (1024 * 1024 + 2))
      expect(buffer.read).to eq("c")
    end

    it "matches a String model under seeded random writes, reads and skips" do
      rng = Random.new(42)
      model = "".b
      300.times do
        case rng.rand(4)
        when 0
          x = rng.bytes(rng.rand(0..70_000))
          model << x
          buffer << x
        when 1
          n = rng.rand(0..80_000)
          ex = model.slice!(0, n)
          got = buffer.read(n)
          expect(got).to eq(n.zero? ? "" : (ex.empty? ? nil : ex))
        when 2
          n = rng.rand(0..80_000)
          expect(buffer.skip(n)).to eq(model.slice!(0, n).bytesize)
        else
          n = rng.rand(0..80_000)
          if n <= model.bytesize
            expect(buffer.read_all(n)).to eq(model.slice!(0, n))
          else
            expect { buffer.read_all(n) }.to raise_error(EOFError)
          end
        end
        expect(buffer.size).to eq(model.bytesize)
      end
      expect(buffer.to_s).to eq(model)
    end
  end

  describe "with an IO" do
    it "returns the IO from #io (nil without one)" do
      io = StringIO.new
      expect(MessagePack::Buffer.new(io).io).to equal(io)
      expect(buffer.io).to be_nil
    end

    it "reads until EOF with read / read_all, '' afterwards" do
      b = MessagePack::Buffer.new(StringIO.new("a" * 100_000))
      expect(b.read).to eq("a" * 100_000)
      expect(b.read).to eq("")
      b = MessagePack::Buffer.new(StringIO.new("abc"))
      expect(b.read_all).to eq("abc")
    end

    it "reads partially and returns nil at EOF" do
      b = MessagePack::Buffer.new(StringIO.new("aa"))
      expect(b.read(1)).to eq("a")
      expect(b.read(5)).to eq("a")
      expect(b.read(1)).to be_nil
    end

    it "read_all(n) reads across IO reads and raises EOFError past the end" do
      data = Random.new(7).bytes(200_000)
      b = MessagePack::Buffer.new(StringIO.new(data))
      expect(b.read_all(150_000)).to eq(data[0, 150_000])
      expect(b.read_all(50_000)).to eq(data[150_000, 50_000])
      expect { b.read_all(1) }.to raise_error(EOFError)
    end

    it "skip and skip_all read from the IO" do
      b = MessagePack::Buffer.new(StringIO.new("abcdef"))
      expect(b.skip(2)).to eq(2)
      expect(b.skip_all(2)).to equal(b)
      expect(b.read).to eq("ef")
      expect(b.skip(1)).to eq(0)
      expect { b.skip_all(1) }.to raise_error(EOFError)
    end

    it "writes to the IO on flush and returns self" do
      io = StringIO.new(+"")
      b = MessagePack::Buffer.new(io)
      b.write("a")
      b << "a"
      expect(b.flush).to equal(b)
      expect(io.string).to eq("aa")
      expect(b.size).to eq(0)
    end

    it "writes large data correctly" do
      io = StringIO.new(+"")
      b = MessagePack::Buffer.new(io)
      1024.times { b.write(" " * 1024) }
      b.flush
      expect(io.string).to eq(" " * (1024 * 1024))
    end

    it "passes long binary strings straight to the IO" do
      io = StringIO.new(+"")
      b = MessagePack::Buffer.new(io, write_reference_threshold: 256)
      b << "abc"
      b << ("x" * 1000).b
      expect(io.string.b).to eq("abc" + "x" * 1000)
      expect(b.size).to eq(0)
    end

    it "is a no-op flush without an IO" do
      buffer << "abc"
      expect(buffer.flush).to equal(buffer)
      expect(buffer.read).to eq("abc")
    end

    it "returns io.close's result from close, or nil without an IO" do
      io = StringIO.new
      expect(MessagePack::Buffer.new(io).close).to be_nil
      expect(io).to be_closed
      expect(buffer.close).to be_nil
      closer = Object.new
      def closer.close = :closed
      expect(MessagePack::Buffer.new(closer).close).to eq(:closed)
    end

    it "writes the buffer to an IO with write_to, consuming it" do
      buffer << "hello"
      io = StringIO.new(+"")
      expect(buffer.write_to(io)).to eq(5)
      expect(io.string).to eq("hello")
      expect(buffer.size).to eq(0)
    end

    it "raises EOFError 'IO reached end of file' when the IO returns nil" do
      io = Object.new
      def io.read(*) = nil
      expect { MessagePack::Buffer.new(io).read_all(1) }.to raise_error(EOFError, "IO reached end of file")
      expect(MessagePack::Buffer.new(io).read).to eq("")
    end

    it "uses << when the IO has no write" do
      out = []
      io = Object.new
      io.define_singleton_method(:<<) { |s| out << s.dup; self }
      b = MessagePack::Buffer.new(io)
      b << "abc"
      b.flush
      expect(out.join).to eq("abc")
    end
  end

  describe "view buffers of Packer and Unpacker" do
    it "returns the same Buffer on every call" do
      pk = MessagePack::Packer.new
      u = MessagePack::Unpacker.new
      expect(pk.buffer).to be_instance_of(MessagePack::Buffer)
      expect(pk.buffer).to equal(pk.buffer)
      expect(u.buffer).to be_instance_of(MessagePack::Buffer)
      expect(u.buffer).to equal(u.buffer)
    end

    it "shares data with the owner both ways" do
      pk = MessagePack::Packer.new
      pk.write(1)
      expect(pk.buffer.read_all(1)).to eq("\x01".b)
      expect(pk.empty?).to be(true)
      pk.buffer << "\xC3"
      expect(pk.to_s).to eq("\xC3".b)
      u = MessagePack::Unpacker.new
      u.buffer << "\x05"
      expect(u.read).to eq(5)
      u.feed("\x06\x07")
      expect(u.buffer.skip(1)).to eq(1)
      expect(u.read).to eq(7)
    end

    it "carries an @owner ivar pointing at its owner", :since_1_6 do
      pk = MessagePack::Packer.new
      u = MessagePack::Unpacker.new
      expect(pk.buffer.instance_variable_get(:@owner)).to equal(pk)
      expect(u.buffer.instance_variable_get(:@owner)).to equal(u)
    end
  end

  describe "ObjectSpace.memsize_of", :since_1_6 do
    it "grows with the data and shrinks when it is consumed" do
      empty = ObjectSpace.memsize_of(buffer)
      expect(empty).to be < 400
      buffer << "a" * 10_000
      expect(ObjectSpace.memsize_of(buffer)).to be > 10_000
      buffer.read_all
      expect(ObjectSpace.memsize_of(buffer)).to eq(empty)
    end

    it "is implemented for Packer, Unpacker and Factory" do
      [MessagePack::Packer.new, MessagePack::Unpacker.new, MessagePack::Factory.new].each do |obj|
        expect(ObjectSpace.memsize_of(obj)).to be > 40
      end
    end
  end
end
