# frozen_string_literal: true

require "json"

# Reliability finding 5: `File.binwrite(path, shorter)` inside
# `MessagePack::Unpacker.open(path).each { ... }` killed the process with SIGBUS (the
# decoder read pages the truncation had removed). Now the file's size is checked (fstat)
# before every object by every API (read, skip, full_unpack, each): a file that shrank
# below the read position raises IOError, one that grew is re-mapped and readable, and a
# rewrite of the same size gives the new bytes (or a format error), never a signal.
#
# Every case runs in a child process: a regression is a signal, which must fail the
# example rather than kill the run.

module MappedResizeSpec
  # 40 records of ~1 KiB: record(i) = {"i" => i, "pad" => "x" * 1000}; SIZE is one
  # record's size (all the same).
  SETUP = <<~'RUBY'
    require "tmpdir"
    DIR = Dir.mktmpdir("msgpack-resize")
    PATH = File.join(DIR, "records.msgpack")
    def record(i) = MessagePack.pack({ "i" => i, "pad" => "x" * 1000 })
    SIZE = record(0).bytesize
    DATA = Array.new(40) { |i| record(i) }.join
    File.binwrite(PATH, DATA)
    def attempt
      [:ok, yield]
    rescue StandardError => e
      [e.class.name, e.message.sub(PATH, "PATH")]
    end
  RUBY

  def self.shrank(size, pos) = ["IOError", "PATH shrank to #{size} bytes, below the read position #{pos}"]
end

RSpec.describe "Reliability: mapped files that change size while read (finding 5)", if: !MSGPACK_SPEC_ORACLE do
  def run_child(code) = child_json(MappedResizeSpec::SETUP + code)

  it "truncated inside each (File.binwrite of a shorter file): IOError, no signal" do
    r = run_child(<<~'RUBY')
      seen = []
      out = attempt { MessagePack::Unpacker.open(PATH) { |u| u.each { |h| seen << h["i"]; File.binwrite(PATH, DATA.byteslice(0, 1500)) if h["i"] == 2 } } }
      Probe.report("seen" => seen, "out" => out, "size" => SIZE)
    RUBY
    expect(r["seen"]).to eq([0, 1, 2])
    expect(r["out"]).to eq(MappedResizeSpec.shrank(1500, 3 * r["size"]))
  end

  it "truncated to 0 bytes inside each" do
    r = run_child(<<~'RUBY')
      u = MessagePack::Unpacker.open(PATH)
      seen = []
      out = attempt { u.each { |h| seen << h["i"]; File.truncate(PATH, 0) if h["i"] == 1 } }
      after = [u.size, attempt { u.read }, u.seek(0), attempt { u.read }, attempt { u.each.to_a }]
      Probe.report("seen" => seen, "out" => out, "after" => after, "size" => SIZE)
    RUBY
    expect(r["seen"]).to eq([0, 1])
    expect(r["out"]).to eq(MappedResizeSpec.shrank(0, 2 * r["size"]))
    # Still below the read position: the same IOError until a seek; then an empty file:
    # nothing to read, each yields nothing.
    expect(r["after"]).to eq([0, MappedResizeSpec.shrank(0, 2 * r["size"]), 0, ["EOFError", "end of buffer reached"],
                              ["ok", []]])
  end

  it "truncated between reads: IOError; back at the start the remaining records read normally" do
    r = run_child(<<~'RUBY')
      u = MessagePack::Unpacker.open(PATH)
      first = [u.read["i"], u.read["i"], u.read["i"]]
      File.truncate(PATH, 2 * SIZE + 10)
      out = attempt { u.read }
      u.rewind
      again = [u.read["i"], u.read["i"], attempt { u.read }]
      Probe.report("first" => first, "out" => out, "again" => again, "size" => SIZE)
    RUBY
    expect(r["first"]).to eq([0, 1, 2])
    expect(r["out"]).to eq(MappedResizeSpec.shrank(2 * r["size"] + 10, 3 * r["size"]))
    incomplete = "end of file reached inside an object: PATH ends at byte #{2 * r['size'] + 10}, " \
                 "the object starting at byte #{2 * r['size']} is incomplete"
    expect(r["again"]).to eq([0, 1, ["EOFError", incomplete]])
  end

  it "truncated between skips, and before full_unpack" do
    r = run_child(<<~'RUBY')
      u = MessagePack::Unpacker.open(PATH)
      3.times { u.skip }
      File.truncate(PATH, SIZE)
      skip = attempt { u.skip }
      u.seek(0)
      full = attempt { u.full_unpack["i"] }
      File.binwrite(PATH, DATA.byteslice(0, SIZE / 2))
      u.seek(0)
      cut = attempt { u.skip }
      Probe.report("skip" => skip, "full" => full, "cut" => cut, "size" => SIZE)
    RUBY
    size = r["size"]
    expect(r["skip"]).to eq(MappedResizeSpec.shrank(size, 3 * size))
    expect(r["full"]).to eq(["ok", 0]) # exactly one record left
    expect(r["cut"]).to eq(["EOFError", "end of file reached inside an object: PATH ends at byte #{size / 2}, " \
                                        "the object starting at byte 0 is incomplete"])
  end

  it "shrunk but still past the read position inside each: each reads on and stops at the cut record" do
    r = run_child(<<~'RUBY')
      u = MessagePack::Unpacker.open(PATH)
      seen = []
      out = attempt { u.each { |h| seen << h["i"]; File.truncate(PATH, 5 * SIZE + 100) if h["i"] == 1 } }
      Probe.report("seen" => seen, "out" => out, "read" => attempt { u.read }.first)
    RUBY
    expect(r["seen"]).to eq([0, 1, 2, 3, 4])
    expect(r["out"]).to eq(["ok", nil])
    expect(r["read"]).to eq("EOFError")
  end

  it "grown inside each (rewritten longer, and appended to): each goes on into the new records" do
    r = run_child(<<~'RUBY')
      File.binwrite(PATH, DATA.byteslice(0, 3 * SIZE))
      seen = []
      MessagePack::Unpacker.open(PATH) do |u|
        u.each do |h|
          seen << h["i"]
          File.binwrite(PATH, DATA.byteslice(0, 10 * SIZE)) if h["i"] == 1
          File.open(PATH, "ab") { |f| f.write(record(100)) } if h["i"] == 9
        end
      end
      Probe.report("seen" => seen)
    RUBY
    expect(r["seen"]).to eq((0..9).to_a + [100])
  end

  it "rewritten in place with other objects of the same total size: new values or format errors, never a signal" do
    r = run_child(<<~'RUBY')
      ints = Array.new(DATA.bytesize / 5) { |i| MessagePack.pack(0x10000 + i) }.join # 5-byte uint32s
      ints = ints.byteslice(0, DATA.bytesize).ljust(DATA.bytesize, "\xc0".b)
      garbage = Random.new(7).bytes(DATA.bytesize)
      results = [ints, garbage, DATA.reverse].map do |replacement|
        File.binwrite(PATH, DATA)
        count = 0
        out = attempt do
          MessagePack::Unpacker.open(PATH) do |u|
            u.each { |_| File.binwrite(PATH, replacement) if (count += 1) == 2; break if count > 100_000 }
          end
        end
        [count, out.first]
      end
      Probe.report("results" => results)
    RUBY
    ints, garbage, reversed = r["results"]
    expect(ints[0]).to be > 2 # each went on decoding the uint32s that replaced the records
    expect(ints[1]).to eq("ok")
    decode_errors = ["ok", "MessagePack::MalformedFormatError", "MessagePack::UnknownExtTypeError",
                     "MessagePack::StackError", "EOFError"]
    [garbage, reversed].each do |count, outcome|
      expect(count).to be >= 2
      expect(decode_errors).to include(outcome)
    end
  end

  # -------------------------------------------------------------------- inside an object

  # The size is checked before each object; an ext proc runs in the middle of one. So when
  # ext procs can run, the object is first measured and copied out of the mapping (no Ruby
  # code runs meanwhile): a proc that truncates the file cannot make the decoder read pages
  # the truncation removed. The object in progress decodes from its copy; the next read
  # sees the new size.
  it "an ext proc that truncates the file in the middle of an object: that object decodes, the next read raises IOError" do
    out, err, status = child_script_run(MappedResizeSpec::SETUP + <<~'RUBY')
      Ext = Struct.new(:x)
      f = MessagePack::Factory.new
      f.register_type(1, Ext, packer: ->(_) { "" }, unpacker: ->(_) { File.truncate(PATH, 0); :ext })
      File.binwrite(PATH, f.dump([Ext.new, "x" * 1_000_000]) + f.dump(7))
      u = f.open_file(PATH)
      first = attempt { u.read }
      Probe.report("read" => [first[0], first[1][0], first[1][1].bytesize], "next" => attempt { u.read }.first)
    RUBY
    expect_clean_exit(status, err)
    report = JSON.parse(out.lines.last)
    expect(report["read"]).to eq(["ok", "ext", 1_000_000])
    expect(report["next"]).to eq("IOError")
  end

  it "another thread that truncates the file while the reader is inside an ext proc: no SIGBUS" do
    out, err, status = child_script_run(MappedResizeSpec::SETUP + <<~'RUBY')
      Ext = Struct.new(:x)
      inside = Queue.new
      go_on = Queue.new
      f = MessagePack::Factory.new
      f.register_type(1, Ext, packer: ->(_) { "" }, unpacker: ->(_) { inside << true; go_on.pop; :ext })
      File.binwrite(PATH, f.dump([Ext.new, "x" * 1_000_000]))
      u = f.open_file(PATH)
      reader = Thread.new { attempt { u.read }.first }
      inside.pop
      File.truncate(PATH, 0)
      go_on << true
      Probe.report("read" => reader.value, "next" => attempt { u.read }.first)
    RUBY
    expect_clean_exit(status, err)
    report = JSON.parse(out.lines.last)
    expect(report["read"]).to eq("ok")
    expect(report["next"]).to eq("IOError")
  end

  # After "shrank below the read position" the position stays past the end; the next read
  # says "end of buffer reached" although nothing changed since the IOError.
  it "keeps raising IOError while the file stays shorter than the read position" do
    r = run_child(<<~'RUBY')
      u = MessagePack::Unpacker.open(PATH)
      u.read
      u.read
      File.truncate(PATH, 100)
      Probe.report("outs" => [attempt { u.read }.first, attempt { u.read }.first, attempt { u.skip }.first])
    RUBY
    expect(r["outs"]).to eq(["IOError", "IOError", "IOError"])
  end
end
