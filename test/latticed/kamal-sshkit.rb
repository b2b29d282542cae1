# What Kamal does over SSH, with Debian's ruby-sshkit / ruby-net-ssh / ruby-net-scp:
# SSHKit's Netssh backend as root with Kamal's keepalive options, credentials Lattice
# ignores (net-ssh never needs a key here), 30 concurrent connection starts, execute,
# capture, test, upload! of a file, and a pooled connection reused.
#
# Usage: ruby kamal-sshkit.rb HOST LOCAL_FILE REMOTE_PATH   (prints "ok" and the host key type)
# With LATTICE_NO_ED25519=1 the ed25519 gem cannot be loaded (as on a machine without
# it): net-ssh then negotiates an ECDSA or RSA host key.
if ENV["LATTICE_NO_ED25519"] == "1"
  module Kernel
    alias_method :lattice_orig_require, :require
    def require(name)
      raise LoadError, "cannot load such file -- #{name}" if name == "ed25519" || name.start_with?("ed25519/")
      lattice_orig_require(name)
    end
  end
end

require "sshkit"
require "sshkit/dsl"
include SSHKit::DSL

host, local, remote = ARGV
abort "usage: kamal-sshkit.rb HOST LOCAL_FILE REMOTE_PATH" unless host && local && remote

SSHKit.config.output_verbosity = Logger::WARN
SSHKit::Backend::Netssh.configure do |ssh|
  ssh.connection_timeout = 20
  ssh.ssh_options = {
    user: "root",
    keepalive: true,
    keepalive_interval: 30,
    # Kamal users have keys; Lattice accepts whatever is offered (policy decides).
    auth_methods: %w[password],
    password: "ignored-by-lattice",
    non_interactive: true,
    verify_host_key: :never,
    logger: Logger.new($stderr, level: Logger::FATAL),
  }
end

on(["root@#{host}"]) do
  execute :true
  uid = capture(:id, "-u")
  raise "capture(id -u) = #{uid.inspect}" unless uid == "0"
  raise "test -d /tmp failed" unless test("[ -d /tmp ]")
  raise "test -d /nonexistent succeeded" if test("[ -d /nonexistent-lattice ]")
  upload! local, remote
  size = capture(:stat, "-c", "%s", remote)
  raise "uploaded size #{size} != #{File.size(local)}" unless size.to_i == File.size(local)
end

# 30 concurrent connection starts (each thread checks out its own pooled connection).
errors = Queue.new
threads = Array.new(30) do |i|
  Thread.new do
    SSHKit::Backend::Netssh.new(SSHKit::Host.new("root@#{host}")) do
      out = capture(:echo, "t#{i}")
      raise "thread #{i}: #{out.inspect}" unless out == "t#{i}"
    end.run
  rescue StandardError => e
    errors << e
  end
end
threads.each(&:join)
raise errors.pop unless errors.empty?

# The pooled connection is reused.
on(["root@#{host}"]) { execute :true }

kex = nil
Net::SSH.start(host, "root", password: "x", auth_methods: %w[password], non_interactive: true, verify_host_key: :never) do |s|
  kex = s.transport.algorithms.host_key
end
puts "ok #{kex}"
