# frozen_string_literal: true

# Reads the re-entrancy tables of docs/reentrancy.md (each follows a
# "<!-- reentrancy-table: NAME -->" line) so that the specs test exactly what the page
# says, and runs ReentrancyMatrix (spec/support/reentrancy_matrix.rb) in a child process.
module ReentrancyDoc
  PATH = File.expand_path("../../docs/reentrancy.md", __dir__)

  # What each code of the tables means: the outcome string ReentrancyMatrix records.
  ERRORS = {
    "R" => "raise MessagePack::UnpackError: Unpacker is in use (re-entrant call from an extension callback?)",
    "T" => "raise MessagePack::UnpackError: Unpacker is in use by another thread",
    "B" => "raise MessagePack::UnpackError: buffer is in use (re-entrant call from an extension callback?)",
    "P" => "raise RuntimeError: Packer is in use: written by another thread",
    "M" => "raise MessagePack::UnpackError: MappedUnpacker is in use (re-entrant call from an extension callback?)",
  }.freeze

  Cell = Struct.new(:code, :wip) do
    def works? = code == "✓"
    def error = ReentrancyDoc::ERRORS.fetch(code)
  end

  module_function

  # [contexts, {method => {context => Cell}}]
  def table(name)
    lines = File.readlines(PATH, chomp: true)
    start = lines.index { |l| l.strip == "<!-- reentrancy-table: #{name} -->" }
    raise "docs/reentrancy.md has no table #{name}" unless start

    rows = lines[(start + 1)..].drop_while { |l| !l.start_with?("|") }.take_while { |l| l.start_with?("|") }
    contexts = split_row(rows[0]).drop(1)
    body = rows.drop(2).to_h do |row|
      method, *codes = split_row(row)
      raise "#{name}: row #{method} has #{codes.size} cells for #{contexts.size} contexts" if codes.size != contexts.size

      [method.delete("`"), contexts.zip(codes).to_h { |context, code| [context, parse_cell(code)] }]
    end
    [contexts, body]
  end

  def split_row(row)
    row.strip.delete_prefix("|").delete_suffix("|").split("|").map(&:strip)
  end

  # "✓", "✓¹" (a footnote), "R", "⚠T" (works today; the table's intended code is T).
  def parse_cell(text)
    code = text.delete("¹²³⁴⁵⁶⁷⁸⁹⁰").strip
    wip = code.start_with?("⚠")
    code = code.delete_prefix("⚠").strip
    raise "unknown code #{text.inspect} in docs/reentrancy.md" unless code == "✓" || ERRORS.key?(code)

    Cell.new(code, wip)
  end

  # The child's {context => {method => [outcome, after]}}; raises with the child's
  # stderr when it crashed.
  # The Ruby that runs the C gem: $MSGPACK_RS_ORACLE_RUBY (script/rubies sets it; in the
  # Ruby 3.4 chroot it is sid's Ruby 3.3 with msgpack 1.8.5), else this Ruby.
  def oracle_ruby
    ruby = ENV.fetch("MSGPACK_RS_ORACLE_RUBY", "")
    ruby.empty? ? RbConfig.ruby : ruby
  end

  # The C gem's version under oracle_ruby (nil when it cannot be loaded), memoized.
  def oracle_version
    return @oracle_version if defined?(@oracle_version)

    require "open3"
    out, _err, status = Open3.capture3({ "RUBYLIB" => nil, "RUBYOPT" => nil, "GEM_HOME" => nil }, oracle_ruby, "-e",
                                       'require "msgpack"; abort "msgpack-rs" if defined?(MessagePack::MappedUnpacker); print MessagePack::VERSION',
                                       chdir: "/")
    @oracle_version = status.success? ? Gem::Version.new(out.strip) : nil
  end

  # ruby: run that Ruby without our lib (the C gem), for cross-checks.
  def child_results(spec, kind, ruby: nil)
    require "json"
    require "open3"
    script = ReentrancyMatrix::REQUIRE_LINE + %(require "json"\nputs JSON.generate(ReentrancyMatrix.run(#{kind.dump}))\n)
    if ruby
      args = [ruby, "-e", script]
      env = { "RUBYLIB" => nil, "RUBYOPT" => nil, "GEM_HOME" => nil }
      out, err, status = Open3.capture3(env, *args, chdir: "/")
    else
      out, err, status = spec.run_isolated_ruby(script)
    end
    unless status.success? && !err.include?("[BUG]")
      raise "re-entrancy child (#{kind}#{ruby ? ", #{ruby}" : ''}) failed: #{status.inspect}\n#{err[0, 3000]}"
    end

    JSON.parse(out.lines.last)
  end
end
