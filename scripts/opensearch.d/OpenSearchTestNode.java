/*
 * A single OpenSearch node for tests and demos, started from the jars on the
 * classpath: the server with its Netty4 transport and HTTP plugin, no
 * security plugin, one data directory. scripts/opensearch starts it; it
 * prints "url=http://127.0.0.1:PORT" once the node answers HTTP and stops
 * (closing the node) on SIGTERM, or when the process named by --owner
 * exits, so a test run that dies leaves no JVM behind.
 *
 * Usage: OpenSearchTestNode --home DIR [--port PORT] [--owner PID]
 * (PORT 0, the default, takes a free one).
 */
package org.monasca.persister.testnode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.core.common.transport.TransportAddress;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public final class OpenSearchTestNode {

    /** Node's constructor that takes plugins from the classpath is protected. */
    static final class ClasspathNode extends Node {
        ClasspathNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        Path home = null;
        String port = "0";
        long ownerPid = -1;
        for (int i = 0; i < args.length; i++) {
            String value = i + 1 < args.length ? args[i + 1] : null;
            switch (args[i]) {
                case "--home" -> home = Path.of(require(args[i], value)).toAbsolutePath();
                case "--port" -> port = require(args[i], value);
                case "--owner" -> ownerPid = Long.parseLong(require(args[i], value));
                default -> fail("unknown argument " + args[i]);
            }
            i++;
        }
        if (home == null) {
            fail("--home DIR is required");
        }
        for (String dir : List.of("data", "logs", "config", "plugins", "modules")) {
            Files.createDirectories(home.resolve(dir));
        }
        Settings settings = Settings.builder()
            .put("cluster.name", "monasca-persister-test")
            .put("node.name", "node-0")
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", "0")
            .put("discovery.type", "single-node")
            // A full disk on a shared test machine must not turn indices read-only.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("node.processors", Math.min(2, Runtime.getRuntime().availableProcessors()))
            .put("logger.level", "WARN")
            .build();
        LogConfigurator.configureWithoutConfig(settings);
        LogConfigurator.setNodeName("node-0");
        Environment environment =
            InternalSettingsPreparer.prepareEnvironment(settings, Collections.emptyMap(), home.resolve("config"), () -> "node-0");
        Node node = new ClasspathNode(environment, List.of(Netty4Plugin.class));
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                System.err.println("closing the node: " + e);
            } finally {
                closed.countDown();
            }
        }, "close-node"));
        if (ownerPid > 0) {
            var owner = ProcessHandle.of(ownerPid);
            if (owner.isEmpty()) {
                fail("owner process " + ownerPid + " is not running");
            }
            owner.get().onExit().thenRun(() -> System.exit(0));
        }
        node.start();
        TransportAddress http = node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress();
        System.out.println("url=http://" + http.getAddress() + ":" + http.getPort());
        System.out.flush();
        closed.await();
    }

    private static String require(String option, String value) {
        if (value == null) {
            fail(option + " needs a value");
        }
        return value;
    }

    private static void fail(String message) {
        System.err.println("opensearch-test-node: " + message);
        System.exit(2);
    }
}
