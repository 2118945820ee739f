# frozen_string_literal: true

require "tmpdir"
require "pathname"

# Reliability finding 7: mapped-file paths were converted lossily (from_utf8_lossy), so
# MessagePack.load_file("data-\xff.msgpack") opened "data-\uFFFD.msgpack". Now a path is
# taken as bytes, exactly as File.open takes it: Strings of any ASCII-compatible encoding
# (valid or not), Pathname and other #to_path objects; a NUL byte raises ArgumentError;
# MappedUnpacker#path returns the path given.

RSpec.describe "Reliability: mapped-file paths are bytes (finding 7)", if: !MSGPACK_SPEC_ORACLE do
  around do |example|
    Dir.mktmpdir("msgpack-paths") do |dir|
      @dir = dir
      example.run
    end
  end

  # Writes `value` to a file named `name` (a binary String) in the temp dir.
  def put(name, value)
    path = File.join(@dir.b, name.b)
    File.binwrite(path, MessagePack.pack(value))
    path
  end

  # Every API that maps a file, reading one object.
  def every_reader(path)
    {
      "MessagePack.load_file" => -> { MessagePack.load_file(path) },
      "Unpacker.open.read" => -> { MessagePack::Unpacker.open(path) { |u| u.read } },
      "Unpacker.open.each" => -> { MessagePack::Unpacker.open(path).each.first },
      "Factory#load_file" => -> { MessagePack::Factory.new.load_file(path) },
      "Factory#open_file" => -> { MessagePack::Factory.new.open_file(path) { |u| u.full_unpack } },
    }.transform_values do |read|
      read.call
    rescue StandardError => e
      e.class
    end
  end

  def all(value) = { "MessagePack.load_file" => value, "Unpacker.open.read" => value, "Unpacker.open.each" => value,
                     "Factory#load_file" => value, "Factory#open_file" => value }

  describe "a name with a byte that is not UTF-8, next to a decoy named with U+FFFD" do
    before do
      @real = put("data-\xff.msgpack", "real")
      @decoy = put("data-\u{FFFD}.msgpack", "decoy")
    end

    it "opens the real file from a binary String" do
      expect(@real.encoding).to eq(Encoding::BINARY)
      expect(every_reader(@real)).to eq(all("real"))
    end

    it "opens the real file from a UTF-8 String with a broken byte" do
      utf8 = @real.dup.force_encoding(Encoding::UTF_8)
      expect(utf8.valid_encoding?).to be(false)
      expect(every_reader(utf8)).to eq(all("real"))
    end

    it "opens the real file from a Pathname and from an object with #to_path" do
      real = @real
      to_path = Object.new
      to_path.define_singleton_method(:to_path) { real }
      expect(every_reader(Pathname.new(@real))).to eq(all("real"))
      expect(every_reader(to_path)).to eq(all("real"))
    end

    it "still opens the decoy by its own (valid UTF-8) name" do
      expect(every_reader(@decoy)).to eq(all("decoy"))
    end

    it "a missing name with the same byte is ENOENT, even though the decoy exists" do
      File.delete(@real)
      expect(every_reader(@real)).to eq(all(Errno::ENOENT))
    end

    it "MappedUnpacker#path returns the path as given (same bytes, same encoding), frozen" do
      utf8 = @real.dup.force_encoding(Encoding::UTF_8)
      [@real, utf8].each do |given|
        u = MessagePack::Unpacker.open(given)
        expect(u.path).to eq(given)
        expect(u.path.encoding).to eq(given.encoding)
        expect(u.path).to be_frozen
        expect(u.inspect).to include("MappedUnpacker")
        u.close
      end
      u = MessagePack::Unpacker.open(Pathname.new(@real))
      expect(u.path).to eq(@real)
      u.close
    end
  end

  it "another ASCII-compatible encoding (ISO-8859-1) is taken byte for byte, as File.open does" do
    latin = put("caf\xe9.msgpack", "latin").force_encoding(Encoding::ISO_8859_1)
    expect(File.binread(latin)).to eq(MessagePack.pack("latin"))
    expect(every_reader(latin)).to eq(all("latin"))
  end

  it "a NUL byte raises ArgumentError everywhere, as File.open does" do
    put("a", 1)
    ["#{@dir}/a\0b", "#{@dir}/a\0", "#{@dir}/a\0".b].each do |path|
      expect { File.open(path) }.to raise_error(ArgumentError, /null byte/)
      expect(every_reader(path)).to eq(all(ArgumentError))
    end
  end

  it "an ASCII-incompatible encoding raises Encoding::CompatibilityError, as File.open does" do
    path = put("plain.msgpack", 1).encode(Encoding::UTF_16LE)
    expect { File.open(path) }.to raise_error(Encoding::CompatibilityError)
    expect(every_reader(path)).to eq(all(Encoding::CompatibilityError))
  end

  it "non-paths raise TypeError" do
    expect(every_reader(12)).to eq(all(TypeError))
    expect(every_reader(nil)).to eq(all(TypeError))
  end

  # As File.open: "No such file or directory - .../nope-\xFF", never U+FFFD; messages the
  # extension writes itself show such bytes as \xFF.
  it "error messages name the path's own bytes, not U+FFFD" do
    missing = File.join(@dir.b, "nope-\xff".b)
    message = begin
      MessagePack.load_file(missing)
    rescue Errno::ENOENT => e
      e.message
    end
    expect(message.b).to include("nope-\xff".b)
    expect(message.b).not_to include("\u{FFFD}".b)
    dir = File.join(@dir.b, "dir-\xff".b)
    Dir.mkdir(dir)
    message = begin
      MessagePack.load_file(dir)
    rescue ArgumentError => e
      e.message
    end
    expect(message).to include("dir-\\xFF")
    expect(message.b).not_to include("\u{FFFD}".b)
  end
end
