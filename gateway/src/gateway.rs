//! The state one gateway node shares between its tasks.

use crate::app::AppRegistry;
use crate::bus::Bus;
use crate::config::GatewayConfig;
use crate::connections::Connections;
use crate::hub::Hub;
use crate::publisher::Publisher;
use std::sync::Arc;

pub struct Gateway {
    pub config: GatewayConfig,
    pub apps: AppRegistry,
    pub hub: Hub,
    pub publisher: Publisher,
    pub connections: Arc<Connections>,
}

impl Gateway {
    pub fn new(config: GatewayConfig, bus: Arc<dyn Bus>) -> Arc<Self> {
        Arc::new(Gateway {
            hub: Hub::new(Arc::clone(&bus)),
            publisher: Publisher::new(bus, config.subject_prefix.clone()),
            apps: AppRegistry::default(),
            connections: Arc::default(),
            config,
        })
    }

    pub fn is_ready(&self) -> bool {
        self.publisher.bus().is_ready()
    }
}
