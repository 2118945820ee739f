# frozen_string_literal: true

# The gem ships the whole Cargo workspace (root Cargo.toml + Cargo.lock + every
# member crate): `gem install` runs ext/msgpack_rs/extconf.rb, whose Makefile
# runs `cargo build --release` inside the installed gem directory.
#
# Files come from Dir globs, not `git ls-files`, so a gem built from a working
# tree includes files that are not committed yet.

root = File.expand_path(__dir__)

version_file = File.join(root, "lib", "msgpack", "version.rb")
version_src = File.exist?(version_file) ? File.read(version_file) : ""
version = version_src[/^\s*VERSION\s*=\s*["']([^"']+)["']/, 1] or
  raise "msgpack-rs.gemspec: MessagePack::VERSION not found in #{version_file}"

# The precompiled x86_64-linux gem (script/release builds it in a staging copy): the
# Ruby files and one stripped extension per Ruby minor version, lib/msgpack/<x.y>/, no
# Rust sources and nothing to build at install.
platform = ENV["MSGPACK_RS_PLATFORM"]
platform = nil if platform&.empty?

if platform
  files = Dir.chdir(root) do
    Dir.glob(%w[README.md LICENSE* lib/**/*.rb lib/msgpack/[0-9]*.[0-9]*/msgpack_rs.so]).select { |f| File.file?(f) }.sort
  end
  prebuilt = files.grep(%r{\Alib/msgpack/(\d+\.\d+)/msgpack_rs\.so\z}) { Regexp.last_match(1) }
  raise "msgpack-rs.gemspec: MSGPACK_RS_PLATFORM is set but no lib/msgpack/<x.y>/msgpack_rs.so is here" if prebuilt.empty?
else
  # Workspace members, read from the root Cargo.toml so a new member crate is packaged too.
  cargo_toml = File.read(File.join(root, "Cargo.toml"))
  members_src = cargo_toml[/^\s*members\s*=\s*\[(.*?)\]/m, 1] || ""
  members = members_src.scan(/["']([^"']+)["']/).flatten
  members = %w[core ext/msgpack_rs] if members.empty?

  excluded = [
    %r{(\A|/)target/},                          # cargo build output
    %r{(\A|/)fuzz/(corpus|artifacts|coverage)/}, # fuzzing state
    /\.(so|bundle|dll|dylib|o|a|gem|tmp)\z/,    # build products
    %r{(\A|/)(Makefile|mkmf\.log)\z},           # extconf.rb output
  ].freeze

  files = Dir.chdir(root) do
    globs = %w[
      Cargo.toml Cargo.lock README.md LICENSE* CHANGELOG.md
      rust-toolchain rust-toolchain.toml .cargo/config .cargo/config.toml
      lib/**/*.rb
    ]
    globs += members.map { |m| "#{m}/**/*" }
    Dir.glob(globs).select { |f| File.file?(f) }.reject { |f| excluded.any? { |re| re.match?(f) } }.sort.uniq
  end
end

Gem::Specification.new do |spec|
  spec.name = "msgpack-rs"
  spec.version = version
  spec.authors = ["msgpack-rs contributors"]
  spec.license = "MIT"

  spec.summary = "Drop-in replacement for the msgpack gem, written in Rust"
  spec.description = <<~DESC + (platform ? "Precompiled for Ruby #{prebuilt.join(", ")}.\n" : "Building it needs cargo (Rust) and libclang.\n")
    MessagePack for Ruby with the msgpack gem's API (require "msgpack"), implemented in Rust:
    usable from Ractors, safe under GC compaction, with limits against hostile input.
  DESC

  spec.files = files
  spec.require_paths = ["lib"]
  if platform
    spec.platform = Gem::Platform.new(platform)
    # The extensions inside: lib/msgpack.rb loads the one for the running Ruby.
    spec.metadata["msgpack_rs_prebuilt_rubies"] = prebuilt.join(",")
    spec.required_ruby_version = [">= #{prebuilt.min_by { |v| Gem::Version.new(v) }}",
                                  "< #{prebuilt.max_by { |v| Gem::Version.new(v) }.succ}.dev"]
  else
    spec.extensions = ["ext/msgpack_rs/extconf.rb"]
    spec.required_ruby_version = ">= 3.1"
  end
  spec.metadata["rubygems_mfa_required"] = "true"
end
