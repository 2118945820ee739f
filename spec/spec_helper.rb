# frozen_string_literal: true

# Spec helper for msgpack-rs.
#
# Normal run (from the repo root):   rspec            (.rspec adds -I lib and requires this file)
# Oracle run against the C gem:      MSGPACK_SPEC_ORACLE=1 rspec
#
# The oracle run drops this repo's lib/ from the load path and loads whatever
# `require "msgpack"` finds next (Debian's ruby-msgpack). Examples tagged with a
# `:since_X_Y` tag newer than the loaded MessagePack::VERSION are excluded, so the
# run checks that every remaining expectation holds for the real C gem.
# MSGPACK_SPEC_ORACLE_ALL=1 keeps those examples (to see that they really fail).
#
# Metadata used in the suite:
#   :since_1_4_3 ... :since_1_8  behaviour of 1.8.3 that the named C gem version introduced
#                                (excluded from oracle runs against older C gems)
#   :crashes_old_c_gem           SEGVs C gems older than 1.8 (never run against them)
#   :wip                         a known bug, not fixed yet: asserts the intended behaviour and
#                                fails today. Left out of normal runs; `rspec --tag wip` (or
#                                MSGPACK_SPEC_WIP=1) runs them
#   :c_quirk                     asserts a C gem oddity that msgpack-rs copies on purpose
#                                (docs/compatibility.md §18); run `rspec --tag ~c_quirk` to
#                                leave them out if msgpack-rs deliberately fixes one (then move
#                                it to docs/compatibility.md §19 and update the example)

REPO_ROOT = File.expand_path("..", __dir__)
REPO_LIB = File.join(REPO_ROOT, "lib")
MSGPACK_SPEC_ORACLE = ENV["MSGPACK_SPEC_ORACLE"] == "1"
# The installed gem (`gem "msgpack-rs"` from GEM_HOME/GEM_PATH) instead of lib/: what
# script/native-gem-check runs, for the precompiled gem installed without a toolchain.
MSGPACK_SPEC_INSTALLED = ENV["MSGPACK_SPEC_INSTALLED"] == "1"

if MSGPACK_SPEC_ORACLE || MSGPACK_SPEC_INSTALLED
  $LOAD_PATH.delete_if { |path| File.expand_path(path) == REPO_LIB }
  gem "msgpack-rs" if MSGPACK_SPEC_INSTALLED
else
  $LOAD_PATH.unshift(REPO_LIB) unless $LOAD_PATH.any? { |path| File.expand_path(path) == REPO_LIB }
end

# How child Ruby processes load the msgpack under test (before their own code).
SPEC_CHILD_LOAD_ARGS =
  if MSGPACK_SPEC_ORACLE then []
  elsif MSGPACK_SPEC_INSTALLED then ["-r", File.join(__dir__, "fixtures", "activate_installed_gem.rb")]
  else ["-I", REPO_LIB]
  end

require "msgpack"
require "stringio"
require "tempfile"

msgpack_features = $LOADED_FEATURES.grep(%r{msgpack}).reject { |f| f.include?("/rspec") }
if MSGPACK_SPEC_ORACLE
  ours = msgpack_features.select { |f| f.start_with?(REPO_ROOT) || f.include?("msgpack_rs") }
  abort "MSGPACK_SPEC_ORACLE=1 but msgpack-rs was loaded: #{ours.inspect}" unless ours.empty?
elsif MSGPACK_SPEC_INSTALLED
  gem_dir = Gem.loaded_specs.fetch("msgpack-rs").full_gem_path
  ext = $LOADED_FEATURES.grep(/msgpack_rs\.(so|bundle)\z/)
  foreign = msgpack_features.reject { |f| f.start_with?(gem_dir + "/") || f.include?("/extensions/") }
  if ext.empty? || ext.any? { |f| f.start_with?(REPO_ROOT + "/") } || !foreign.empty?
    abort "MSGPACK_SPEC_INSTALLED=1 but msgpack-rs was not loaded from the installed gem #{gem_dir}: " \
          "#{ext.inspect} #{foreign.inspect}"
  end
  $stderr.puts "spec_helper: testing the installed gem: #{ext.first}"
else
  foreign = msgpack_features.reject { |f| f.start_with?(REPO_ROOT + "/") }
  if $LOADED_FEATURES.grep(/msgpack_rs/).empty? || !foreign.empty?
    abort <<~MSG
      spec_helper: `require "msgpack"` did not load msgpack-rs from #{REPO_LIB}.
        msgpack_rs extension loaded: #{$LOADED_FEATURES.grep(/msgpack_rs/).inspect}
        msgpack files loaded from elsewhere: #{foreign.inspect}
      Build the extension (lib/msgpack/msgpack_rs.so) and run `rspec` from #{REPO_ROOT},
      or set MSGPACK_SPEC_ORACLE=1 to run the suite against the installed C gem.
    MSG
  end
end

Warning[:experimental] = false if Warning.respond_to?(:[]=)

# Helpers shared by the spec files (plain modules; see each file).
Dir[File.join(__dir__, "support", "**", "*.rb")].sort.each { |f| require f }

# Move objects around once at start and keep compacting, to catch GC movement bugs.
# The keywords depend on the Ruby version (spec/support/compaction.rb).
if GC.respond_to?(:verify_compaction_references)
  begin
    CompactionHelpers.verify_compaction_references
  rescue NotImplementedError
    # compaction not supported on this platform
  end
end
begin
  GC.auto_compact = true if GC.respond_to?(:auto_compact=)
rescue NotImplementedError
  # compaction not supported on this platform
end

module SpecHelpers
  # "c4 02 00 ff" / "c4-02-00-ff" / "C4 02" => binary String
  def bin(hex)
    [hex.delete(" -")].pack("H*").b
  end

  # binary String => "c4 02 00 ff"
  def hex(str)
    str.unpack1("H*").scan(/../).join(" ")
  end

  # Runs Ruby code in a child process that loads the same msgpack as this run
  # (our lib, or the C gem in the oracle run). For tests that would otherwise leave
  # global state behind (DefaultFactory registrations, monkey patches).
  # Returns [stdout, stderr, status].
  def run_isolated_ruby(code)
    require "open3"
    args = [RbConfig.ruby, *SPEC_CHILD_LOAD_ARGS, "-e", code]
    env = { "RUBYLIB" => nil, "RUBYOPT" => nil }
    Open3.capture3(env, *args, chdir: MSGPACK_SPEC_ORACLE ? "/" : REPO_ROOT)
  end
end

ORACLE_VERSION_TAGS = {
  since_1_4_3: "1.4.3",
  since_1_4_5: "1.4.5",
  since_1_5: "1.5.0",
  since_1_6: "1.6.0",
  since_1_7: "1.7.0",
  since_1_8: "1.8.0",
}.freeze

RSpec.configure do |config|
  config.include SpecHelpers
  config.extend SpecHelpers
  config.include RactorHelpers
  config.include MessageHelpers
  config.disable_monkey_patching!
  config.expect_with(:rspec) { |c| c.syntax = :expect }
  config.order = :defined

  # Known bugs (:wip) fail until fixed; `--tag wip` on the command line overrides this.
  config.filter_run_excluding(wip: true) unless ENV["MSGPACK_SPEC_WIP"] == "1"

  if MSGPACK_SPEC_ORACLE
    loaded = Gem::Version.new(MessagePack::VERSION)
    unless ENV["MSGPACK_SPEC_ORACLE_ALL"] == "1"
      ORACLE_VERSION_TAGS.each do |tag, version|
        config.filter_run_excluding(tag => true) if Gem::Version.new(version) > loaded
      end
    end
    # Examples that crash (SEGV, not fail) old C gems: never run them against one.
    config.filter_run_excluding(crashes_old_c_gem: true) if loaded < Gem::Version.new("1.8.0")
  end
end
