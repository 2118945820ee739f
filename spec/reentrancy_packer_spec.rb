# frozen_string_literal: true

# docs/reentrancy.md, the Packer table (Packer and Packer#buffer): every method called
# from every context in which user code runs while a write (a walk) or a flush is in
# progress. Same scheme as spec/reentrancy_unpacker_spec.rb: the table comes from the doc,
# the cells run in one child process, and each example checks the outcome and the bytes
# the Packer produces afterwards (the interrupted write finished, then 09 was written).
#
# The walk is `write(0); write([1, obj, 2])` where obj is the interrupting object (an ext
# type or a to_msgpack), so the interruption point is right after `00 93 01`. For the IO
# contexts the Packer writes 0 and [1, 2] to an IO and flushes; the interruption is the
# IO's write of `00 92 01 02`; "after" is [bytes the IO got, bytes left in the Packer].

module ReentrancyPackerSpec
  # What each write appends at the interruption point.
  INSERTED = {
    "write" => "03", "pack" => "03", "write_int" => "03", "write_nil" => "c0", "write_true" => "c3",
    "write_false" => "c2", "write_float" => "cb 3f e0 00 00 00 00 00 00", "write_float32" => "ca 3f 00 00 00",
    "write_string" => "a1 73", "write_bin" => "c4 01 62", "write_bin_header" => "c4 00", "write_symbol" => "a1 79",
    "write_array" => "90", "write_hash" => "80", "write_array_header" => "90", "write_map_header" => "80",
    "write_ext" => "d4 01 65", "write_extension" => "d4 01 65", "buffer.<<" => "03", "buffer.write" => "03"
  }.freeze
  # Calls that take or drop all the output so far, and the one-byte ones.
  TAKE_ALL = ["reset", "clear", "full_pack", "write_to", "buffer.read", "buffer.clear", "buffer.write_to"].freeze
  TAKE_ONE = ["buffer.read(1)", "buffer.read_all(1)", "buffer.skip(1)", "buffer.skip_all(1)"].freeze
  # What the read-only calls return at the point, per layout.
  SO_FAR = ["to_s", "to_str", "buffer.to_s", "full_pack", "write_to", "buffer.read", "buffer.write_to"].freeze

  NO_READ_METHOD = /\Araise NoMethodError: undefined method [`']read'/.freeze
  EMPTY_BUFFER = "raise EOFError: end of buffer reached"

  module_function

  # ext1(payload): an ext type 1 header (fixext when it fits) followed by the payload.
  def ext1(payload_hex)
    n = payload_hex.split.size
    header = { 1 => "d4", 2 => "d5", 4 => "d6", 8 => "d7", 16 => "d8" }.fetch(n) { format("c7 %02x", n) }
    "#{header} 01 #{payload_hex}"
  end

  # Output the walk contexts produce with nothing happening at the point.
  WALK = { "ext packer proc" => ["00 93 01", "d4 01 78 02 09"], "to_msgpack" => ["00 93 01", "05 02 09"] }.freeze
  BASE = {
    "ext packer proc" => "00 93 01 d4 01 78 02 09",
    "recursive ext packer" => "00 93 01 d4 01 05 02 09",
    "to_msgpack" => "00 93 01 05 02 09",
    "IO callback" => ["00 92 01 02 09", ""],
    "thread / to_msgpack" => "00 93 01 05 02 09",
    "thread / recursive" => "00 93 01 d4 01 05 02 09",
    "thread / IO" => ["00 92 01 02 09", ""],
  }.freeze

  # [outcome (nil: any "ok ...", a Regexp: matching), after] of a ✓ cell.
  def expected(context, method)
    base = BASE.fetch(context)
    case context
    when "ext packer proc", "to_msgpack"
      before, rest = WALK.fetch(context)
      return [nil, "#{before} #{INSERTED[method]} #{rest}"] if INSERTED.key?(method)

      outcome = %(ok "#{before}") if SO_FAR.include?(method)
      outcome = "ok 3" if ["size", "buffer.size"].include?(method)
      outcome = %(ok "00") if ["buffer.read(1)", "buffer.read_all(1)"].include?(method)
      outcome = "ok 1" if method == "buffer.skip(1)"
      after = if TAKE_ALL.include?(method) then rest
              elsif TAKE_ONE.include?(method) then "#{before.split.drop(1).join(' ')} #{rest}"
              else base
              end
      [outcome, after]
    when "recursive ext packer"
      # The Packer holds only the payload being built: empty at the point.
      return [nil, "00 93 01 #{ext1("#{INSERTED[method]} 05")} 02 09"] if INSERTED.key?(method)

      outcome = %(ok "") if SO_FAR.include?(method)
      outcome = "ok 0" if ["size", "buffer.size", "buffer.skip(1)"].include?(method)
      outcome = "ok nil" if method == "buffer.read(1)"
      outcome = EMPTY_BUFFER if ["buffer.read_all(1)", "buffer.skip_all(1)"].include?(method)
      [outcome, base]
    when "IO callback"
      # The flush took the output: the Packer is empty; what is written is flushed next.
      return [nil, ["00 92 01 02 #{INSERTED[method]} 09", ""]] if INSERTED.key?(method)

      outcome = %(ok "") if SO_FAR.include?(method)
      outcome = "ok nil" if method == "full_pack" # with an IO, full_pack flushes and returns nil
      outcome = "ok 0" if ["size", "buffer.size"].include?(method)
      outcome = NO_READ_METHOD if method.start_with?("buffer.read", "buffer.skip") # reads the IO, which has no #read
      [outcome, base]
    else
      [nil, base]
    end
  end

  # Same-thread columns where msgpack-rs and the C gem (1.8.x) agree, byte for byte,
  # but for the rows msgpack-rs adds.
  C_GEM_COLUMNS = ["ext packer proc", "recursive ext packer", "to_msgpack"].freeze
  C_GEM_ABSENT = ["compact!", "MessagePack.compact!", "buffer.compact!"].freeze
end

RSpec.describe "Re-entrancy: Packer and Packer#buffer (docs/reentrancy.md)", if: !MSGPACK_SPEC_ORACLE do
  contexts, rows = ReentrancyDoc.table("packer")

  before(:context) do
    @results = ReentrancyDoc.child_results(self, "packer")
  end

  it "the table lists every method and context the matrix runs, and the matrix every one of the table" do
    expect(contexts).to eq(@results.keys)
    expect(rows.keys.sort).to eq(ReentrancyMatrix::PACKER_CALLS.keys.sort)
  end

  rows.each do |method, cells|
    describe method do
      cells.each do |context, cell|
        title = cell.wip ? "from #{context}: should raise #{cell.code} (⚠ works today)" : "from #{context}: #{cell.code}"
        it title, **(cell.wip ? { wip: true } : {}) do
          outcome, after = @results.fetch(context).fetch(method)
          if cell.works?
            want_outcome, want_after = ReentrancyPackerSpec.expected(context, method)
            case want_outcome
            when nil then expect(outcome).to start_with("ok")
            when Regexp then expect(outcome).to match(want_outcome)
            else expect(outcome).to eq(want_outcome)
            end
            expect(after).to eq(want_after)
          else
            expect(outcome).to eq(cell.error)
            expect(after).to eq(ReentrancyPackerSpec::BASE.fetch(context)), "a refused call changed the output"
          end
        end
      end
    end
  end

  # The known gap at its worst: bytes another thread adds through the view while the
  # writer is blocked in the IO's write reach the IO before the bytes being written.
  it "another thread's buffer << and buffer.flush during a flush cannot reorder the IO's stream" do
    outcome, (sink, rest) = ReentrancyMatrix.packer_io_other_thread(->(pk) { pk.buffer << "\x03".b; pk.buffer.flush })
    expect(outcome).to eq(ReentrancyDoc::ERRORS["P"])
    expect([sink, rest]).to eq(["00 92 01 02 09", ""])
  end

  describe "cross-check with the C gem (MSGPACK_RS_ORACLE_RUBY)" do
    it "gives the same outcome and bytes in every same-thread walk column" do
      version = ReentrancyDoc.oracle_version
      skip "needs the C gem 1.8 (the Ruby 3.4 chroot of script/rubies); found #{version.inspect}" unless version && version >= Gem::Version.new("1.8")

      theirs = ReentrancyDoc.child_results(self, "packer", ruby: ReentrancyDoc.oracle_ruby)
      ReentrancyPackerSpec::C_GEM_COLUMNS.each do |context|
        (rows.keys - ReentrancyPackerSpec::C_GEM_ABSENT).each do |method|
          expect(@results.dig(context, method)).to eq(theirs.dig(context, method)), "#{method} from #{context}"
        end
      end
    end
  end
end
